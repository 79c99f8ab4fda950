"""The wheel's layout; the project's metadata is in pyproject.toml.

The code packages (flows, tasks, schemas) are found in the tree. The files the
code reads at run time (the warehouse/ SQL, examples/ and the demo_data/ they
point to, templates/ such as the RLCD contrast templates) go into the wheel
under one `thumbs_data/` folder, keeping their relative layout, so installing
thumbs adds no top-level `warehouse` or `examples` to site-packages.
tasks/common/settings.py finds them there.
"""
from setuptools import find_namespace_packages, find_packages, setup

# the folders of run-time files: every file in them ships
SHIPPED = ("warehouse", "examples", "demo_data", "templates")

packages = find_packages(include=["flows*", "tasks*", "schemas*"])
package_data = {}
for folder in SHIPPED:
    # setuptools copies data folder by folder: each one is listed as a package of its own
    for below in ["", *find_namespace_packages(folder)]:
        name = ".".join(filter(None, ["thumbs_data", folder, below]))
        packages.append(name)
        package_data[name] = ["*"]

setup(
    packages=packages,
    package_dir={f"thumbs_data.{folder}": folder for folder in SHIPPED},
    package_data=package_data,
)
