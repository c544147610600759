"""Where an owner's variables sit in object-based and Keras files (alias normalisation).

Name-based checkpoints name each variable by the owner's own name. Object-based
(`tf.train.Checkpoint`) and Keras ``.h5``/``.keras`` files name it by its place in an
object graph; each leaf owner says where its variables sit relative to its own object
(`Owner._aliases(fmt)`), and `normalize` finds that object in the file (`pick_root`)
and gives the names a plan matches. Owners are duck-typed (see plan.OwnerLike).
"""

from __future__ import annotations

import re
from typing import Any

from .errors import CheckpointError
from .readers import Reader

# Entries of a whole-model file that belong to no model variable (optimizer state, the
# tf.train.Checkpoint save counter): outside the model even when it sits at the top.
_NOT_MODEL = re.compile(r"^(optimizer|save_counter)(/|$)")


def pick_root(reader: Reader, key_prefix: str, leaf: Any, aliases: dict[str, str]) -> str | None:
    """Where `leaf`'s object sits in an object-based or .h5 checkpoint: the prefix under
    which most of its variables are found, or None if none is.

    Several prefixes holding equally many (two same-architecture models in one file)
    are told apart by the leaf's key in its `Parameters` (`teacher/` for
    `Parameters(teacher=...)`, a file written by `tf.train.Checkpoint(teacher=...)`);
    if that does not decide, the load is refused rather than guessed.
    """
    counts: dict[str, int] = {}
    for rel in aliases.values():
        for entry in reader.entries:
            if entry == rel or entry.endswith("/" + rel):
                root = entry[: len(entry) - len(rel)]
                counts[root] = counts.get(root, 0) + 1
    if not counts:
        return None
    best = max(counts.values())
    roots = sorted(r for r, n in counts.items() if n == best)
    if len(roots) > 1 and key_prefix:
        keyed = [r for r in roots if r == key_prefix or r.endswith("/" + key_prefix)]
        roots = keyed or roots
    if len(roots) > 1 and "" in roots:
        roots = [""]
    if len(roots) > 1:
        raise CheckpointError(
            f"Checkpoint {reader.path} holds {len(roots)} objects that fit the "
            f"{leaf.framework} owner {leaf.name!r} equally well: {roots}. Expected one; "
            "tfunite does not guess which. Fix: wrap the owner in tu.Parameters under the "
            "key the checkpoint uses (e.g. Parameters(..., teacher=owner) for "
            "tf.train.Checkpoint(teacher=...))."
        )
    return roots[0]


def normalize(reader: Reader, owner: Any) -> tuple[dict[str, str], list[str], list[str]]:
    """{normalized name: checkpoint entry}, the entries outside the owner's object, and
    the owner's variables that this format does not store (alias None).

    For name-based checkpoints a normalized name is the entry itself. For object-based
    and .h5 checkpoints, each leaf owner says where its variables sit relative to its
    own object (`Owner._aliases`); the leaf's root inside the checkpoint is the prefix
    under which most of them exist (`_pick_root`). Entries under a root used by an
    owner but not claimed by it keep their own name, so a strict load reports them as
    unexpected.
    """
    if reader.fmt == "name" or not hasattr(owner, "leaves"):
        return {name: name for name in reader.entries}, [], []
    names: dict[str, str] = {}
    absent: list[str] = []
    roots_used: list[str] = []
    for key_prefix, leaf in owner.leaves():
        aliases = leaf._aliases(reader.fmt)
        if aliases is None:
            raise CheckpointError(
                f"{reader.path} is a {reader.kind} checkpoint, which the {leaf.framework} "
                f"owner {leaf.name!r} cannot read. Fix: use a TF name-based checkpoint "
                "(tu.save or a TF1 Saver)."
            )
        absent.extend(key_prefix + canon for canon, rel in aliases.items() if rel is None)
        aliases = {canon: rel for canon, rel in aliases.items() if rel is not None}
        root = pick_root(reader, key_prefix, leaf, aliases)
        if root is None:
            continue  # nothing of this leaf is in the checkpoint: reported as missing
        roots_used.append(root)
        for canon, rel in aliases.items():
            if root + rel in reader.entries:
                names[key_prefix + canon] = root + rel
    used = set(names.values())
    leftover = []
    for entry in reader.entries:
        if entry in used:
            continue
        inside = any(entry.startswith(root) for root in roots_used if root) or (
            "" in roots_used and not _NOT_MODEL.match(entry)
        )
        if inside:
            names[entry] = entry  # inside an owner's object but not one of its variables
        else:
            leftover.append(entry)
    return names, leftover, absent
