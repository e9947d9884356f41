"""`eyepurify models [NAME]`: the shipped models and their cards (docs/models/NAME.md)."""

from __future__ import annotations

import argparse

from eyepurify.errors import EyepurifyError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the shipped models with their cards (style, data, measured numbers)",
                       description="Without NAME: one line per shipped model (name, kind, style, eye scale). "
                       "With NAME: its whole card (training data and command, measured real-data numbers, "
                       "known limitations). The cards are docs/models/NAME.md.")
    p.add_argument("name", nargs="?", default=None, help="a model's name (as listed) to print its card")
    p.set_defaults(func=run)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def run(args: argparse.Namespace) -> int:
    from eyepurify.modelcards import CARDS, FIELDS, cards, eye_scale_text, shipped_files

    found = cards()
    if args.name is not None:
        card = next((c for c in found if c.name == args.name or c.fields.get("file") == args.name), None)
        if card is None:
            names = ", ".join(c.name for c in found) or "none (no docs/models/ in this install)"
            raise EyepurifyError(f"no model card named {args.name!r}: the cards are {names}")
        print(f"{card.name}  ({card.file.name}; card: {card.path})")
        print(f"  eye scale: {eye_scale_text(card.file)}")
        for key in FIELDS[1:]:
            print(f"  {key}: {card.fields.get(key, '(not stated)')}")
        print()
        print(card.body, end="")
        return 0
    by_file = {c.fields.get("file"): c for c in found}
    print(f"{'name':<20} {'kind':<14} {'eye scale':<26} style")
    for f in shipped_files():
        c = by_file.get(f.name)
        name = c.name if c else f.stem
        kind = (c.fields.get("kind", "") if c else "").split(" (")[0] or "?"
        style = _short(c.fields.get("style", ""), 70) if c else "(no card)"
        print(f"{name:<20} {kind:<14} {eye_scale_text(f):<26} {style}")
    print(f"cards: {CARDS if CARDS.is_dir() else 'docs/models/ of the source repository'}; "
          "`eyepurify models NAME` prints one (training data and command, real-data numbers, limitations)")
    return 0
