"""pip route: installs the Python package. The ROS message is built by CMake (see Makefile
target `msg`, or colcon for a real ROS install)."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["maqbool_ros", "maqbool_ros.*"]),
    # the model registry (`maqbool models`) is data inside the package
    package_data={"maqbool_ros.core.descriptor": ["registry.json"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/maqbool_ros"]),
    ],
)
