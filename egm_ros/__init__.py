"""egm_ros: efficient visual grounding (EGM) for ROS 2.

The ROS build generates ``egm_ros.msg`` and ``egm_ros.action`` into a package of the same
name as this one. ``extend_path`` lets the two halves live in different folders (the source
tree and the install prefix) and still import as one package, whichever comes first on
``sys.path``. CMake installs this file over the generated ``__init__.py``.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
