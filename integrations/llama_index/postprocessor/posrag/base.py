"""``PositionReorder``: a LlamaIndex node postprocessor that puts the best nodes where the model reads best."""

from __future__ import annotations

from typing import Any

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle

from posrag.adapters import ReorderSettings
from posrag.documents import POSITION_METADATA_KEYS, PositionInfo, ScoredDocument
from posrag.ordering import Reorderer
from posrag.registry import remember_documents


def node_to_document(node: NodeWithScore) -> ScoredDocument:
    """posrag's view of a node: its text without metadata, its metadata, score and id."""
    return ScoredDocument(
        text=node.node.get_content(),
        metadata=dict(node.node.metadata),
        score=node.score,
        id=node.node.node_id,
    )


def _with_position_keys(keys: list[str]) -> list[str]:
    return list(dict.fromkeys([*keys, *POSITION_METADATA_KEYS]))


class PositionReorder(ReorderSettings, BaseNodePostprocessor):
    """Reorder retrieved nodes for a small model (see :mod:`posrag.ordering` for the strategies).

    Every returned node is a copy carrying its final position in ``metadata`` (``posrag_position``,
    ``posrag_total``, ``posrag_relative_position``); those keys are excluded from the text the LLM and the
    embedder see. The input list and nodes are not modified.
    """

    _reorderer: Reorderer = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        self._reorderer = self.build_reorderer()

    @classmethod
    def class_name(cls) -> str:
        return "PosragPositionReorder"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        order = self._reorderer.plan([n.score for n in nodes])
        total = len(order)
        out: list[NodeWithScore] = []
        for new_index, old_index in enumerate(order):
            original = nodes[old_index]
            node = original.node.model_copy()
            node.metadata = {**original.node.metadata, **PositionInfo(new_index, total).to_metadata()}
            node.excluded_llm_metadata_keys = _with_position_keys(original.node.excluded_llm_metadata_keys)
            node.excluded_embed_metadata_keys = _with_position_keys(original.node.excluded_embed_metadata_keys)
            out.append(NodeWithScore(node=node, score=original.score))
        remember_documents(node_to_document(n) for n in out)
        return out
