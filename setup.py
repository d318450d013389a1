"""The one thing pyproject.toml cannot say without an experimental table: the C renderer.

`shim.legacy._render` writes image views straight to JSON bytes (see shim/legacy/render.py).
It is optional: without a C compiler the build still succeeds and the shim renders every
page with shim/legacy/views.py, which defines the output anyway.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "shim.legacy._render",
            sources=["shim/legacy/_render.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
        )
    ]
)
