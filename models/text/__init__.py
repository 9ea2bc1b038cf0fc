"""Text classifiers: the embedding head (``models.text.head``) and the LLM tier (``models.text.llm``).

Submodules are imported directly; nothing heavy is imported here.
"""

__all__: list[str] = []
