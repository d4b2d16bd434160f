"""How much memory this process can still allocate, to refuse hopeless allocations early.

Used before allocating what a configuration or a file asks for (a network's
parameters, a model file's arrays), so that an impossible size becomes a clear
``ValueError`` naming the estimate instead of NumPy's ``MemoryError`` or the
out-of-memory killer.
"""
import os

__all__ = ["available_memory", "format_bytes"]


def _meminfo():
    """``/proc/meminfo`` as ``{field: bytes}`` (empty where there is none)."""
    fields = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    fields[name] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    except OSError:
        pass
    return fields


def _read_int(path):
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_room():
    """Bytes left under this process's cgroup v2 memory limit (None if unlimited or unknown)."""
    try:
        with open("/proc/self/cgroup") as f:
            entries = [line.strip().split(":", 2) for line in f]
    except OSError:
        return None
    relative = next((e[2] for e in entries if len(e) == 3 and e[0] == "0"), None)
    if relative is None:
        return None
    directory = os.path.join("/sys/fs/cgroup", relative.lstrip("/"))
    limit = _read_int(os.path.join(directory, "memory.max"))
    current = _read_int(os.path.join(directory, "memory.current"))
    if limit is None or current is None:
        return None
    reclaimable = 0
    try:
        with open(os.path.join(directory, "memory.stat")) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == "inactive_file" and value.strip().isdigit():
                    reclaimable = int(value)
    except OSError:
        pass
    return max(limit - max(current - reclaimable, 0), 0)


def _address_space_room():
    """Bytes left under ``ulimit -v`` (RLIMIT_AS), or None without such a limit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not Unix
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        used = 0
    return max(soft - used, 0)


def available_memory():
    """Bytes this process can still allocate, as far as the system tells; None if unknown.

    The smallest of: free memory (Linux ``MemAvailable`` plus free swap, else
    ``sysconf`` available pages), the room left under a cgroup v2 memory
    limit, and the room left under ``ulimit -v``.

    Returns
    -------
    int or None
    """
    candidates = []
    info = _meminfo()
    if "MemAvailable" in info:
        candidates.append(info["MemAvailable"] + info.get("SwapFree", 0))
    else:
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
            pass
    for room in (_cgroup_room(), _address_space_room()):
        if room is not None:
            candidates.append(room)
    return min(candidates) if candidates else None


def format_bytes(n):
    """``n`` bytes in binary units: ``"3.0 GiB"``."""
    value = float(min(n, 10 ** 300))
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB" if value < 1e4 else f"{value:.2g} PiB"
