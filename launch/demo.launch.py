"""`ros2 launch egm_ros demo.launch.py`: the demo on a robot (or any ROS 2 machine): the
simulated camera, the grounding node with the embedded EGM-Tiny model, and the scripted client
that asks about each scene and writes annotated pictures into `out` (default /tmp/egm_demo)."""

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

ARGUMENTS = {
    "backend": ("embedded", "engine of the grounding node"),
    "seed": ("0", "first scene's seed"),
    "out": ("/tmp/egm_demo", "folder for the annotated PNGs"),
}


def generate_launch_description() -> LaunchDescription:
    args = [
        DeclareLaunchArgument(name, default_value=default, description=description)
        for name, (default, description) in ARGUMENTS.items()
    ]
    camera = Node(
        package="egm_ros",
        executable="sim_camera",
        name="sim_camera",
        parameters=[
            {
                "rate": 5.0,
                "width": 224,
                "height": 224,
                "seed": LaunchConfiguration("seed"),
                "scene_period": 3.0,
            }
        ],
    )
    grounder = Node(
        package="egm_ros",
        executable="grounding_node",
        name="grounding_node",
        output="screen",
        parameters=[
            {
                "backend": LaunchConfiguration("backend"),
                "frame_buffer_seconds": 60.0,
                "frame_stamp_tolerance": 0.0,
                "max_new_tokens": 256,
            }
        ],
    )
    client = Node(
        package="egm_ros",
        executable="demo_client",
        name="demo_client",
        output="screen",
        arguments=["--out", LaunchConfiguration("out"), "--seed", LaunchConfiguration("seed")],
    )
    return LaunchDescription([*args, camera, grounder, client])
