"""deployguard: a Kubernetes validating admission webhook that guards deploys.

The package is layered: pure modules turn facts into decisions (``images``,
``workloads``, ``admission``, ``policy_input``, ``decision``); I/O lives at the
edges (``engines``, ``policy_store``, ``decision_log``, ``server``, ``serve``, ``cli``).
"""

__version__ = "0.1.0"
