"""Cortex Python bootstrap.

Started by the sandbox as `python -s -u -B bootstrap.py module.path:function`.
Imports the entrypoint module from the working directory (the agent's code),
calls the function, and runs it under asyncio when it is a coroutine function.
A return exits 0; an uncaught exception prints its traceback to stderr (the
log collector keeps it) and exits 1. Kept tiny: every import here is paid on
every agent start.
"""
import sys


def _main():
    if len(sys.argv) < 2 or ":" not in sys.argv[1]:
        sys.stderr.write("cortex bootstrap: usage: bootstrap.py module.path:function\n")
        return 2
    target = sys.argv[1]
    modname, _, funcname = target.partition(":")
    sys.argv = [target] + sys.argv[2:]
    # sys.path[0] is this shim's directory; the agent's code is the cwd.
    import os
    sys.path[0] = os.getcwd()
    # The SDK and the agent's packages come on PYTHONPATH; as site
    # directories their .pth files count too, as in a normal install.
    import site
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if entry:
            site.addsitedir(entry)
    import importlib
    try:
        module = importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        if exc.name and modname.startswith(exc.name):
            import traceback
            traceback.print_exc()
            sys.stderr.write("cortex: cannot import %r from %s: check the entrypoint in cortex.yaml\n" % (modname, os.getcwd()))
            return 1
        raise
    func = getattr(module, funcname, None)
    if not callable(func):
        sys.stderr.write("cortex: %s has no function %r: check the entrypoint in cortex.yaml\n" % (modname, funcname))
        return 1
    result = func()
    if hasattr(result, "__await__"):
        import asyncio

        async def _await():
            return await result

        asyncio.run(_await())
    return 0


if __name__ == "__main__":
    sys.exit(_main())
