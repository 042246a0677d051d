"""Starting Ray, the same way for every process that spreads work over it (PRM scoring actors, sampling and
rollout actors, the Ray Serve service).

    started = start_ray(num_cpus=4)     # joins $RAY_ADDRESS, or starts a private Ray on 127.0.0.1
    ...
    if started:
        ray.shutdown()

Ray is an extra (``e2h[ray]``): it is imported here, inside the functions, and a missing install is an ImportError
that names the extra.
"""

from __future__ import annotations

import os

from e2h.loopback import LOOPBACK

LOCAL = "local"


def import_ray(need: str = "this"):
    """The ``ray`` module, or an ImportError saying what needed it and how to install it."""
    try:
        import ray
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(f"{need} needs Ray: pip install 'e2h[ray]'") from err
    return ray


def start_ray(address: str | None = None, *, num_cpus: int | None = None, node_ip: str | None = LOOPBACK,
              log_to_driver: bool = False, need: str = "this") -> bool:
    """Connect this process to Ray unless it already is; True when this call did (the caller shuts Ray down).

    ``address``: a cluster to join (host:port of its GCS, ``launch/`` starts one); None: ``$RAY_ADDRESS`` when set;
    ``"local"`` (or None without ``$RAY_ADDRESS``): a private Ray of ``num_cpus`` CPUs bound to ``node_ip``, never
    a cluster somebody else started on this machine."""
    ray = import_ray(need)
    if ray.is_initialized():
        return False
    if address is None:
        address = os.environ.get("RAY_ADDRESS") or LOCAL
    if address == LOCAL:
        ray.init(address=LOCAL, num_cpus=num_cpus, include_dashboard=False, _node_ip_address=node_ip,
                 log_to_driver=log_to_driver)
    else:
        ray.init(address=address, include_dashboard=False, log_to_driver=log_to_driver)
    return True
