"""An ApiClient of the official kubernetes client, from a kubeconfig or in-cluster config.

The serving process's users of that client (the calendar watch, Events) have their own
retry policy (backoff, or best effort), so urllib3's retries are off by default: they
would log a warning per attempt, in a loop, while the API server is down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def api_client(kubeconfig: Path | None, *, urllib3_retries: bool = False) -> Any:
    """A ``kubernetes.client.ApiClient``; ``kubeconfig`` None means in-cluster."""
    from kubernetes import client, config

    configuration = client.Configuration()
    if kubeconfig is not None:
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    if not urllib3_retries:
        configuration.retries = False
    return client.ApiClient(configuration)
