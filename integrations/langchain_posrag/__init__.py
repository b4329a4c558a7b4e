"""posrag's LangChain components."""
