"""Pick MuJoCo's headless OpenGL backend before MuJoCo is imported.

MuJoCo reads ``MUJOCO_GL`` once, at import time, and PyOpenGL fixes its platform on first import,
so the choice must come first. A user's own ``MUJOCO_GL`` always wins; otherwise EGL (fast, Mesa
renders on the CPU) and then OSMesa are tried, each in a throw-away subprocess so that a failed
probe cannot poison this process.
"""

from __future__ import annotations

import os
import subprocess
import sys

_PROBE = (
    "import mujoco\n"
    "xml = '<mujoco><worldbody><geom size=\"1\"/></worldbody></mujoco>'\n"
    "m = mujoco.MjModel.from_xml_string(xml)\n"
    "r = mujoco.Renderer(m, 8, 8)\n"
    "r.update_scene(mujoco.MjData(m))\n"
    "r.render()\n"
    "r.close()\n"
)
BACKENDS = ("egl", "osmesa")


def _works(backend: str) -> bool:
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE], env=env, capture_output=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def configure() -> str:
    """Set ``MUJOCO_GL`` (and ``PYOPENGL_PLATFORM``) to a backend that renders here; return it."""
    chosen = os.environ.get("MUJOCO_GL")
    if not chosen:
        if "mujoco" in sys.modules:
            raise RuntimeError("slac.gl.configure() must run before mujoco is imported")
        chosen = next((b for b in BACKENDS if _works(b)), "")
        if not chosen:
            raise RuntimeError(
                "no headless OpenGL backend works: install EGL with Mesa "
                "(libegl1 libegl-mesa0 libgl1-mesa-dri) or OSMesa (libosmesa6), "
                "or set MUJOCO_GL yourself"
            )
        os.environ["MUJOCO_GL"] = chosen  # children inherit it, no second probe
    if chosen in BACKENDS:
        os.environ.setdefault("PYOPENGL_PLATFORM", chosen)
    return chosen
