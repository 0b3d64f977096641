# Included after the find_package() calls of a package's CMakeLists.txt (the top level one and
# test/interfaces/rtabmap_msgs).
# ROS 2 from PyPI wheels: the wheels export include directories of the container they
# were built in. Drop entries that do not exist here; on a real ROS install this is a no-op.
get_property(_imported_targets DIRECTORY PROPERTY IMPORTED_TARGETS)
foreach(_target IN LISTS _imported_targets)
  get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
  if(_dirs)
    set(_existing "")
    foreach(_dir IN LISTS _dirs)
      if(EXISTS "${_dir}" OR _dir MATCHES "^\\$<")
        list(APPEND _existing "${_dir}")
      endif()
    endforeach()
    set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_existing}")
  endif()
endforeach()
