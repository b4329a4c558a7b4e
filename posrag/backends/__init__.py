"""Generation backends other than the torch reference: each runs a planned, steered request on another engine.

``llamacpp``: the llama.cpp backend (the ``posrag[llamacpp]`` extra); ``llamacpp_callback``: the graph
evaluation callback that applies posrag's two steering mechanisms inside llama.cpp.
"""
