"""`Parameters`: an Owner made of named child owners, nested to any depth."""

from __future__ import annotations

from collections.abc import ItemsView, Iterator
from typing import Any

import tensorflow as tf

from .errors import NotBuiltError
from .owner import Owner, check_name


class Parameters(Owner):
    """A composition of owners; each child's variable names are prefixed by its key.

    >>> import keras
    >>> g = tu.wrap(keras.Sequential([keras.layers.Dense(3)]), name="generator")
    >>> d = tu.wrap(keras.Sequential([keras.layers.Dense(1)]), name="discriminator")
    >>> _ = g.initialize(np.zeros([1, 2], np.float32)), d.initialize(np.zeros([1, 3], np.float32))
    >>> params = tu.Parameters("gan", generator=g, discriminator=d)
    >>> params["generator"] is g
    True
    >>> list(params.variables)
    ['generator/dense/kernel', 'generator/dense/bias', 'discriminator/dense/kernel',
     'discriminator/dense/bias']
    """

    framework = "tfunite"

    def __init__(self, name: str, **children: Any) -> None:
        super().__init__(name)
        from .registry import wrap

        self._children: dict[str, Owner] = {}
        for key, child in children.items():
            check_name(key, "child")
            owner = child if isinstance(child, Owner) else wrap(child, name=key)
            twice = next((k for k, c in self._children.items() if c is owner), None)
            if twice is not None:
                raise ValueError(
                    f"Parameters {name!r}: the same owner {owner.name!r} is given twice, as "
                    f"{twice!r} and {key!r}. Expected each owner once: its variables would be "
                    "saved twice and updated twice per step. Fix: keep one key for it."
                )
            self._children[key] = owner

    @property
    def built(self) -> bool:
        return all(child.built for child in self._children.values())

    @built.setter
    def built(self, value: bool) -> None:  # Owner.__init__ sets it; derived here
        pass

    def __getitem__(self, key: str) -> Owner:
        try:
            return self._children[key]
        except KeyError:
            raise KeyError(
                f"Parameters {self.name!r} has no child {key!r}; children: {sorted(self._children)}."
            ) from None

    def __contains__(self, key: str) -> bool:
        return key in self._children

    def __iter__(self) -> Iterator[str]:
        return iter(self._children)

    def items(self) -> ItemsView[str, Owner]:
        return self._children.items()

    def __call__(self, inputs: Any, training: bool = False) -> Any:
        raise TypeError(
            f"Parameters {self.name!r} is a container of owners, not a model: call its "
            f"children (params['{next(iter(self._children), 'child')}'](x)) instead."
        )

    def _require_built(self) -> None:
        missing = [k for k, c in self._children.items() if not c.built]
        unbuilt_optimizers = [k for k in missing if hasattr(self._children[k], "optimizer")]
        if unbuilt_optimizers and len(unbuilt_optimizers) == len(missing):
            key = unbuilt_optimizers[0]
            raise NotBuiltError(
                f"Parameters {self.name!r}: optimizers {unbuilt_optimizers} have no slots "
                f"yet. Fix: {self.name}['{key}'].build() once its owner is built (its first "
                "minimize/apply or tu.load builds it too)."
            )
        if missing:
            models = [k for k in missing if k not in unbuilt_optimizers]
            then = (
                f", then build the optimizers {unbuilt_optimizers} (opt.build(), or their "
                "first minimize/apply, or tu.load)"
                if unbuilt_optimizers
                else ""
            )
            raise NotBuiltError(
                f"Parameters {self.name!r}: children {missing} have no variables yet. "
                f"Fix: call each child once (or child.initialize(example)) before asking "
                f"for the variables of the whole{' (models ' + str(models) + ')' if then else ''}"
                f"{then}."
            )

    def _collect(self) -> list[tuple[str, tf.Variable, bool]]:
        out = []
        for key, child in self._children.items():
            trainable = {id(v) for v in child.trainable_variables}
            for name, var in child.variables.items():
                out.append((f"{key}/{name}", var, id(var) in trainable))
        return out

    def _losses(self) -> list[tf.Tensor]:
        return [loss for child in self._children.values() for loss in child.losses]

    def _endpoints(self) -> dict[str, tf.Tensor]:
        return {f"{k}/{n}": t for k, c in self._children.items() for n, t in c.endpoints.items()}

    def initialize(self, example: Any = None, session: Any = None) -> Parameters:
        if example is not None:
            raise TypeError(
                f"Parameters {self.name!r}.initialize takes no example: its children have "
                "different inputs. Fix: initialize each child with its own example."
            )
        self._require_built()
        self._check_unique()
        for child in self._children.values():
            child.initialize(session=session)
        return self

    def _build_deferred(self) -> None:
        for child in self._children.values():
            child._build_deferred()

    def leaves(self, prefix: str = "") -> Iterator[tuple[str, Owner]]:
        for key, child in self._children.items():
            yield from child.leaves(f"{prefix}{key}/")

    def __repr__(self) -> str:
        return f"<Parameters {self.name!r} children={list(self._children)}>"
