"""The prompt a model's authors put before a document and before a query (pure functions).

A sentence-transformers model saves its prompts in `config_sentence_transformers.json`
(`prompts`: name -> text, `default_prompt_name`); the text is put before the text to embed,
and counts toward the model's max length like the text itself. ray-embed reads the saved file,
not a loaded model: sentence-transformers 5.7 inserts empty "query" and "document" prompts at
load time, so its `encode_document` finds an empty "document" prompt before a model's
"passage" one.

* Documents: the user's `--prompt TEXT` ('' for none) or `--prompt-name NAME`; else the prompt
  `default_prompt_name` names (what `encode` applies to every text); else the first non-empty
  of the "document", "passage" and "corpus" prompts (what `encode_document` looks for); else
  none.
* Queries (`search`): `--query-prompt` / `--query-prompt-name`; else the "query" prompt (what
  `encode_query` applies); else none.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ...errors import UserError

DOCUMENT_NAMES = ("document", "passage", "corpus")
QUERY_NAMES = ("query",)


@dataclass(frozen=True)
class Prompt:
    text: str = ""              # "" = none
    name: str | None = None     # the model's name for it; None: given as text, or none


@dataclass(frozen=True)
class SavedPrompts:
    """What a model's sentence-transformers config says of prompts."""
    prompts: Mapping[str, str]
    default_name: str | None = None

    @classmethod
    def of(cls, st_config: Mapping) -> SavedPrompts:
        prompts = {str(k): str(v) for k, v in (st_config.get("prompts") or {}).items()
                   if v is not None}
        return cls(prompts, st_config.get("default_prompt_name") or None)

    def named(self, name: str, model: str) -> Prompt:
        if name not in self.prompts:
            have = ", ".join(sorted(self.prompts)) or "none"
            raise UserError(f"model {model!r} has no prompt named {name!r} (its prompts: "
                            f"{have}); give the text itself with --prompt / --query-prompt")
        return Prompt(self.prompts[name], name)

    def first_of(self, names: tuple[str, ...]) -> Prompt:
        for name in names:
            if self.prompts.get(name):
                return Prompt(self.prompts[name], name)
        return Prompt()


def choose(saved: SavedPrompts, model: str, side: str, text: str | None = None,
           name: str | None = None) -> Prompt:
    """The prompt of `side` (document | query): the given text (`name`, if given too, is
    only its label: a replica is given both, as the driver resolved them) or the model's
    prompt of that name, else the model's own for the side."""
    if text is not None:
        return Prompt(text, name if text else None)
    if name is not None:
        return saved.named(name, model)
    if side == "query":
        return saved.first_of(QUERY_NAMES)
    if saved.default_name is not None:
        return saved.named(saved.default_name, model)
    return saved.first_of(DOCUMENT_NAMES)


def unused_prompts_note(saved: SavedPrompts, document: Prompt, query: Prompt,
                        model: str) -> str | None:
    """A line for the user when the model has prompts ray-embed does not apply on its own
    (nomic's `search_document`, say), so a prompt is never left out unsaid."""
    used = {document.name, query.name}
    others = sorted(n for n, t in saved.prompts.items() if t and n not in used)
    if not others or document.text:
        return None
    return (f"model {model!r} has prompts {', '.join(others)}, none of them its document prompt "
            f"(default_prompt_name, or a prompt named {', '.join(DOCUMENT_NAMES)}): documents "
            f"are embedded without one; choose one with --prompt-name NAME")


def prompt_token_count(ids: list[int], special_ids: set[int]) -> int:
    """The prompt's length in tokens as sentence-transformers counts it for a Pooling that
    leaves the prompt out (`include_prompt: false`): the prompt tokenized alone, less a
    trailing special token (the tokenizer's SEP or EOS)."""
    return len(ids) - 1 if ids and ids[-1] in special_ids else len(ids)
