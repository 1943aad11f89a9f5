"""`ros2 launch egm_ros grounding.launch.py`: one grounding node for one camera.

Parameters come from `params_file` (default: the package's config/grounding.yaml); the
`backend`, `model`, `base_url` and `mode` arguments override it only when given. `camera`
remaps image_raw, image_raw/compressed and camera_info together (default: none, the node's
namespace, where `sim_camera` publishes); `depth_camera` remaps depth/image_raw and
depth/camera_info to its image_raw and camera_info and turns use_depth on. The rules live in
`egm_ros.node.launch_args`.

Several cameras: launch it once per camera namespace, e.g.
    ros2 launch egm_ros grounding.launch.py namespace:=front camera:=/front/camera
    ros2 launch egm_ros grounding.launch.py namespace:=rear camera:=/rear/camera
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from egm_ros.node.launch_args import ARGUMENTS, camera_remappings, node_parameters
from launch import LaunchDescription


def grounding_node(context):
    """The node, from the arguments as given (performed at launch time)."""
    given = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    params_file = given["params_file"] or os.path.join(
        get_package_share_directory("egm_ros"), "config", "grounding.yaml"
    )
    return [
        Node(
            package="egm_ros",
            executable="grounding_node",
            name="grounding_node",
            namespace=given["namespace"],
            output="screen",
            parameters=node_parameters(params_file, given),
            remappings=camera_remappings(given["camera"], given["depth_camera"]),
        )
    ]


def generate_launch_description() -> LaunchDescription:
    args = [
        DeclareLaunchArgument(name, default_value=default, description=description)
        for name, (default, description) in ARGUMENTS.items()
    ]
    return LaunchDescription([*args, OpaqueFunction(function=grounding_node)])
