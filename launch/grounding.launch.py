"""`ros2 launch egm_ros grounding.launch.py`: one grounding node for one camera.

Several cameras: launch it once per camera namespace, e.g.
    ros2 launch egm_ros grounding.launch.py namespace:=front camera:=/front/camera
    ros2 launch egm_ros grounding.launch.py namespace:=rear camera:=/rear/camera
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node

from launch import LaunchDescription

ARGUMENTS = {
    "namespace": ("", "namespace of the node and of its result/command topics"),
    "camera": (
        "camera",
        "camera namespace: image_raw, image_raw/compressed and camera_info "
        "are taken from <camera>/",
    ),
    "backend": ("embedded", "embedded | transformers | vllm | openai | tensorrt_llm"),
    "model": ("", "model folder or name ('' = the backend's default)"),
    "base_url": ("http://127.0.0.1:8000/v1", "OpenAI-compatible server (openai backend)"),
    "mode": ("visible", "default mode of `command`: visible | amodal"),
    "params_file": ("", "parameters file (default: the package's config/grounding.yaml)"),
}


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(
        get_package_share_directory("egm_ros"), "config", "grounding.yaml"
    )
    args = [
        DeclareLaunchArgument(
            name,
            default_value=default_params if name == "params_file" and not default else default,
            description=description,
        )
        for name, (default, description) in ARGUMENTS.items()
    ]
    camera = LaunchConfiguration("camera")
    node = Node(
        package="egm_ros",
        executable="grounding_node",
        name="grounding_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "backend": LaunchConfiguration("backend"),
                "model": LaunchConfiguration("model"),
                "base_url": LaunchConfiguration("base_url"),
                "mode": LaunchConfiguration("mode"),
            },
        ],
        remappings=[
            ("image_raw", PathJoinSubstitution([camera, "image_raw"])),
            ("image_raw/compressed", PathJoinSubstitution([camera, "image_raw", "compressed"])),
            ("camera_info", PathJoinSubstitution([camera, "camera_info"])),
        ],
    )
    return LaunchDescription([*args, node])
