"""Building a multi-document QA prompt while keeping track of where each document's text lands.

The default template is the one of "Lost in the Middle" (Liu et al., 2023), so the pipeline, the demo and
the benchmark ask the model the same way. The character span of every document is recorded
(:class:`~posrag.documents.DocumentSpan`, re-exported here), so steering can aim at exactly those characters
without searching for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from posrag.documents import DocumentSpan, ScoredDocument, enumerate_positions
from posrag.errors import ConfigurationError

LITM_INSTRUCTION = (
    "Write a high-quality answer for the given question using only the provided search results "
    "(some of which might be irrelevant)."
)


@dataclass(frozen=True)
class PromptTemplate:
    """How a question and documents become a prompt.

    ``document`` is formatted with ``index`` (1-based), ``title`` and ``text``; the documents are joined
    with ``separator`` and placed between ``header`` and ``footer`` (formatted with ``question``).
    """

    header: str = LITM_INSTRUCTION + "\n\n"
    document: str = "Document [{index}](Title: {title}) {text}"
    untitled_document: str = "Document [{index}] {text}"
    separator: str = "\n"
    footer: str = "\n\nQuestion: {question}\nAnswer:"


DEFAULT_TEMPLATE = PromptTemplate()


@dataclass(frozen=True)
class RAGPrompt:
    """A built prompt and the spans of its documents, in prompt order."""

    text: str
    question: str
    spans: tuple[DocumentSpan, ...]

    @property
    def documents(self) -> list[ScoredDocument]:
        return [span.document for span in self.spans]


def build_prompt(
    question: str,
    documents: Sequence[ScoredDocument],
    template: PromptTemplate = DEFAULT_TEMPLATE,
) -> RAGPrompt:
    """Format ``question`` and ``documents`` (already in their final order) into a :class:`RAGPrompt`.

    A document's title is ``metadata["title"]``; untitled documents use ``template.untitled_document``.
    """
    if not question.strip():
        raise ConfigurationError("The question is empty; pass the question to answer.")
    parts = [template.header]
    cursor = len(template.header)
    spans: list[DocumentSpan] = []
    for position, doc in enumerate_positions(documents):
        i = position.index
        if i:
            parts.append(template.separator)
            cursor += len(template.separator)
        marker = "\x00TEXT\x00"
        title = doc.metadata.get("title")
        form = template.document if title else template.untitled_document
        rendered = form.format(index=i + 1, title=title or "", text=marker)
        prefix, _, suffix = rendered.partition(marker)
        start = cursor + len(prefix)
        spans.append(DocumentSpan(doc, start, start + len(doc.text), position))
        chunk = prefix + doc.text + suffix
        parts.append(chunk)
        cursor += len(chunk)
    parts.append(template.footer.format(question=question))
    return RAGPrompt(text="".join(parts), question=question, spans=tuple(spans))


def template_text(
    context: str = "context", question: str = "question", template: PromptTemplate = DEFAULT_TEMPLATE
) -> str:
    """posrag's RAG prompt (the one the pipeline, the demo and the benchmark ask with) as a framework template
    string with ``{context}`` and ``{question}`` placeholders under the names given (LangChain's ``context`` /
    ``question``, LlamaIndex's ``context_str`` / ``query_str``); fill ``context`` with :func:`format_documents`."""
    footer = template.footer.replace("{question}", "\x00QUESTION\x00")
    text = f"{template.header}\x00CONTEXT\x00{footer}".replace("{", "{{").replace("}", "}}")
    return text.replace("\x00CONTEXT\x00", "{" + context + "}").replace("\x00QUESTION\x00", "{" + question + "}")


def format_documents(documents: Sequence[ScoredDocument], template: PromptTemplate = DEFAULT_TEMPLATE) -> str:
    """``documents`` (in their final order) listed as :func:`build_prompt` lists them, for :func:`template_text`."""
    return build_prompt("-", documents, replace(template, header="", footer="")).text


__all__ = [
    "DEFAULT_TEMPLATE",
    "LITM_INSTRUCTION",
    "DocumentSpan",
    "PromptTemplate",
    "RAGPrompt",
    "build_prompt",
    "format_documents",
    "template_text",
]
