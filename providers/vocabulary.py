"""One task vocabulary across providers: the words users filter by, and the table that maps
each provider's own task tag into them.

The vocabulary is the seeds' `text | image | audio | embedding` plus what users search for
(`vision`, `speech-to-text`, `text-to-speech`, `rerank`). Each row of `TASK_TAGS` names who
uses the tag: DeepInfra's model `type` (its OpenAPI spec's `HFTasksE` enum, read 2026-11-23),
Hugging Face's `pipeline_tag` (huggingface.co/docs/hub/models-tasks), and the tags our
adapters derive where a provider states none (Groq's ids, the router's modalities). A tag not
in the table maps to no task: the offer keeps its raw tag (`Offer.task_tag`) and is never
filed under a guessed one.
"""

from __future__ import annotations

TASKS = (
    "text",
    "vision",
    "image",
    "audio",
    "speech-to-text",
    "text-to-speech",
    "embedding",
    "rerank",
)

# raw tag → vocabulary term. Who uses the tag in the comment.
TASK_TAGS = {
    "text-generation": "text",  # DeepInfra type, HF pipeline tag, Groq (derived)
    "text2text-generation": "text",  # HF
    "conversational": "text",  # HF (older pipeline tag)
    "image-text-to-text": "vision",  # HF: images in, text out
    "visual-question-answering": "vision",  # HF
    "text-to-image": "image",  # DeepInfra type, HF
    "image-to-image": "image",  # HF
    "text-to-audio": "audio",  # HF
    "audio-to-audio": "audio",  # HF
    "automatic-speech-recognition": "speech-to-text",  # DeepInfra type, HF, Groq (derived)
    "text-to-speech": "text-to-speech",  # DeepInfra type, HF, Groq (derived)
    "embeddings": "embedding",  # DeepInfra type
    "feature-extraction": "embedding",  # HF
    "sentence-similarity": "embedding",  # HF
    "reranker": "rerank",  # DeepInfra type
    "text-ranking": "rerank",  # HF
} | {term: term for term in TASKS}  # a tag already in the vocabulary (router modalities)


def task_for(tag: str) -> str:
    """The vocabulary term for a provider's task tag; "" when the table has none."""
    return TASK_TAGS.get(tag.strip().lower(), "")
