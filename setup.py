"""Python packaging of egm_ros for plain-Python use (``pip install .``) and the dev venv.

The ROS build (colcon, ``ament_cmake``) does not use this file: CMakeLists.txt generates the
interfaces and installs the same Python sources next to them.
"""

from setuptools import find_packages, setup

setup(
    name="egm_ros",
    version="0.1.0",
    description="Efficient visual grounding (EGM) for ROS 2: visible and amodal boxes",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["egm_ros", "egm_ros.*"]),
    package_data={"egm_ros": ["py.typed"], "egm_ros.models": ["egm_tiny/*"]},
    include_package_data=True,
    install_requires=[
        "numpy>=1.26",
        "pillow>=10.0",
        "opencv-python-headless>=4.8",
        "openai>=1.40",
        "httpx>=0.27",
        "pyyaml>=6.0",
    ],
    entry_points={
        "console_scripts": [
            "egm-ground = egm_ros.cli.ground:main",
            "egm-eval = egm_ros.cli.eval:main",
            "egm-train = egm_ros.training.train:main",
            "egm-demo = egm_ros.demo.run:main",
            "demo_client = egm_ros.demo.client:main",
            "grounding_node = egm_ros.node.main:main",
            "sim_camera = egm_ros.node.sim_camera:main",
        ],
    },
)
