"""Bridges: one module per framework, registered here without importing any framework.

Every bridge module has the same shape: an `Owner` subclass with `decline_reason`,
`__init__`, then the hooks `_forward`, `_collect`, `_losses`, `_endpoints`, `_aliases`
in that order (see tfunite/owner.py).
"""

from tfunite.registry import Bridge, register

# Order matters: the most specific framework first, plain tf.Module last.
KERAS = register(Bridge("keras", "tfunite.bridges.keras", "KerasOwner", ("keras",)))
TF_KERAS = register(Bridge("tf_keras", "tfunite.bridges.tf_keras", "TfKerasOwner", ("tf_keras",)))
SONNET = register(Bridge("sonnet", "tfunite.bridges.sonnet", "SonnetOwner", ("sonnet",)))
SLIM = register(Bridge("slim", "tfunite.bridges.slim", "SlimOwner", ("tf_slim",), wrappable=False))
TFLEARN = register(
    Bridge("tflearn", "tfunite.bridges.tflearn", "TFLearnOwner", ("tflearn",), wrappable=False)
)
TF_MODULE = register(
    Bridge("tf_module", "tfunite.bridges.tf_module", "ModuleOwner", ("tensorflow",))
)
