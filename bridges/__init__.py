"""Bridges: one record per framework, registered here without importing any framework.

Each record (`tfunite.records.Bridge`) is the one place a fact about a framework lives:
its import name, pip distribution and extra, the classes it accepts, its owner class,
its legacy fixes module, whether it runs in TF1 graphs, its compat/golden case. Adding a
bridge means adding its files and one record here; tests/test_architecture.py fails
when a record has no conformance case or does not resolve.

Every bridge module has the same shape: an `Owner` subclass whose `framework` and
`supports_graph` come from its record, implementing the hooks declared on `Owner`
(core/owner.py) in that order: `decline_reason`, `__init__`, `_forward`, `_collect`,
`_losses`, `_endpoints`, `_updates`, `_aliases` (those it needs). A bridge that patches
global state keeps those patches beside it in `<name>_fixes.py`, the record's `fixes`.
"""

from tfunite.records import Bridge, register

# Order matters: the most specific framework first, plain tf.Module last.
KERAS = register(
    Bridge(
        "keras",
        "Keras 3",
        "tfunite.bridges.keras",
        "KerasOwner",
        ("keras",),
        import_name="keras",
        distribution="keras",
        extra="keras",
        graph=False,
        optimizers=True,
        compat_case="tfunite.tools.compat.cases:keras",
        golden_formats=("object", "keras-h5"),
        host_check="tfunite.interop.keras_host:check_host",
    )
)
TF_KERAS = register(
    Bridge(
        "tf_keras",
        "tf_keras (Keras 2)",
        "tfunite.bridges.tf_keras",
        "TfKerasOwner",
        ("tf_keras",),
        import_name="tf_keras",
        distribution="tf-keras",
        extra="tf-keras",
        optimizers=True,
        compat_case="tfunite.tools.compat.cases:tf_keras",
        golden_formats=("object", "keras-h5"),
    )
)
SONNET = register(
    Bridge(
        "sonnet",
        "DeepMind Sonnet 2",
        "tfunite.bridges.sonnet",
        "SonnetOwner",
        ("sonnet",),
        import_name="sonnet",
        distribution="dm-sonnet",
        extra="sonnet",
        fixes="tfunite.bridges.sonnet_fixes",
        optimizers=True,
        compat_case="tfunite.tools.compat.cases:sonnet",
        golden_formats=("object",),
    )
)
SLIM = register(
    Bridge(
        "slim",
        "TF-Slim",
        "tfunite.bridges.slim",
        "SlimOwner",
        ("tf_slim",),
        import_name="tf_slim",
        distribution="tf-slim",
        extra="slim",
        wrappable=False,
        fixes="tfunite.bridges.slim_fixes",
        compat_case="tfunite.tools.compat.cases:slim",
        golden_formats=("saver",),
    )
)
TFLEARN = register(
    Bridge(
        "tflearn",
        "TFLearn",
        "tfunite.bridges.tflearn",
        "TFLearnOwner",
        ("tflearn",),
        import_name="tflearn",
        distribution="tflearn",
        extra="tflearn",
        wrappable=False,
        fixes="tfunite.bridges.tflearn_fixes",
        compat_case="tfunite.tools.compat.cases:tflearn",
        golden_formats=("saver",),
    )
)
TF_MODULE = register(
    Bridge(
        "tf_module",
        "plain tf.Module",
        "tfunite.bridges.tf_module",
        "ModuleOwner",
        ("tensorflow",),
        import_name="tensorflow",
        distribution="tensorflow",
        extra="",
        compat_case="tfunite.tools.compat.cases:tf_module",
        golden_formats=("object",),
    )
)
