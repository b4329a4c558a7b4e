"""``PositionReorder``: a LlamaIndex node postprocessor that puts the best nodes where the model reads best."""

from __future__ import annotations

from typing import Any

from llama_index.callbacks.posrag import node_to_document
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle

from posrag.adapters import RANKED_BY_KEY, ReorderSettings
from posrag.documents import POSITION_METADATA_KEYS, SIMILARITY_KEY, PositionInfo
from posrag.ordering import Reorderer, as_similarity


def _with_position_keys(keys: list[str]) -> list[str]:
    return list(dict.fromkeys([*keys, *POSITION_METADATA_KEYS, SIMILARITY_KEY, RANKED_BY_KEY]))


class PositionReorder(ReorderSettings, BaseNodePostprocessor):
    """Reorder retrieved nodes for a small model (see :mod:`posrag.ordering` for the strategies).

    Every returned node is a copy carrying its final position in ``metadata`` (``posrag_position``,
    ``posrag_total``, ``posrag_relative_position``) and its score in posrag's direction (``posrag_similarity``,
    higher = better whatever ``score_direction``: what posrag's LLM ranks the query's nodes by); those keys are
    excluded from the text the LLM and the embedder see. The input list and nodes are not modified. When no node
    has a score, the retriever's own order is the ranking; ``posrag_ranked_by`` says which (``"score"`` or
    ``"retriever_order"``).
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
        order, scores, ranked_by = self.plan(self._reorderer, [n.score for n in nodes])
        total = len(order)
        out: list[NodeWithScore] = []
        for new_index, old_index in enumerate(order):
            original = nodes[old_index]
            node = original.node.model_copy()
            node.metadata = {
                **original.node.metadata,
                **PositionInfo(new_index, total).to_metadata(),
                SIMILARITY_KEY: as_similarity(scores[old_index], self.score_direction),
                RANKED_BY_KEY: ranked_by,
            }
            node.excluded_llm_metadata_keys = _with_position_keys(original.node.excluded_llm_metadata_keys)
            node.excluded_embed_metadata_keys = _with_position_keys(original.node.excluded_embed_metadata_keys)
            out.append(NodeWithScore(node=node, score=original.score))
        return out


__all__ = ["PositionReorder", "node_to_document"]
