# FindCUDNN: locates NVIDIA cuDNN (headers and the libcudnn library).
#
# Result variables:
#   CUDNN_FOUND         true when cudnn.h, cudnn_version.h and libcudnn were found
#   CUDNN_INCLUDE_DIR   the directory holding cudnn.h
#   CUDNN_LIBRARY       the cudnn library (libcudnn.so: the cuDNN 9 front library, which loads
#                       its sub-libraries such as libcudnn_cnn at run time)
#   CUDNN_VERSION       MAJOR.MINOR.PATCH, parsed from cudnn_version.h
#   CUDNN_VERSION_MAJOR, CUDNN_VERSION_MINOR, CUDNN_VERSION_PATCH
# Imported target:
#   CUDNN::cudnn        include directory + library
# Hints (cache or environment variables): CUDNN_ROOT, CUDNN_HOME, CUDNN_PATH, CUDA_PATH.
# Also searched: the CUDA toolkit found by find_package(CUDAToolkit) if it ran before, /usr/local/cuda*,
# /usr/local/include, /usr/include, /usr/lib/x86_64-linux-gnu.
# Supports find_package(CUDNN <version>) and find_package(CUDNN <min>...<max>).

set(_cudnn_hints)
foreach(_var IN ITEMS CUDNN_ROOT CUDNN_HOME CUDNN_PATH CUDA_PATH)
  if(DEFINED ${_var} AND NOT "${${_var}}" STREQUAL "")
    list(APPEND _cudnn_hints "${${_var}}")
  endif()
  if(DEFINED ENV{${_var}} AND NOT "$ENV{${_var}}" STREQUAL "")
    list(APPEND _cudnn_hints "$ENV{${_var}}")
  endif()
endforeach()
if(CUDAToolkit_LIBRARY_ROOT)
  list(APPEND _cudnn_hints "${CUDAToolkit_LIBRARY_ROOT}")
endif()
if(CUDAToolkit_INCLUDE_DIRS)
  foreach(_dir IN LISTS CUDAToolkit_INCLUDE_DIRS)
    get_filename_component(_parent "${_dir}" DIRECTORY)
    list(APPEND _cudnn_hints "${_parent}")
  endforeach()
endif()
if(CUDAToolkit_LIBRARY_DIR)
  get_filename_component(_parent "${CUDAToolkit_LIBRARY_DIR}" DIRECTORY)
  list(APPEND _cudnn_hints "${_parent}")
endif()
file(GLOB _cudnn_cuda_dirs LIST_DIRECTORIES true "/usr/local/cuda" "/usr/local/cuda-*")
list(APPEND _cudnn_hints ${_cudnn_cuda_dirs})

find_path(CUDNN_INCLUDE_DIR
  NAMES cudnn.h
  HINTS ${_cudnn_hints}
  PATHS /usr/local/include /usr/include /usr/include/x86_64-linux-gnu
  PATH_SUFFIXES include targets/x86_64-linux/include
  DOC "Directory holding cudnn.h")

find_library(CUDNN_LIBRARY
  NAMES cudnn
  HINTS ${_cudnn_hints}
  PATHS /usr/local/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib
  PATH_SUFFIXES lib64 lib lib/x64 targets/x86_64-linux/lib
  DOC "The cuDNN library")

# The version: cuDNN >= 8 keeps it in cudnn_version.h, older releases in cudnn.h.
unset(CUDNN_VERSION)
unset(CUDNN_VERSION_MAJOR)
unset(CUDNN_VERSION_MINOR)
unset(CUDNN_VERSION_PATCH)
if(CUDNN_INCLUDE_DIR)
  set(_cudnn_version_file "${CUDNN_INCLUDE_DIR}/cudnn_version.h")
  if(NOT EXISTS "${_cudnn_version_file}")
    set(_cudnn_version_file "${CUDNN_INCLUDE_DIR}/cudnn.h")
  endif()
  file(STRINGS "${_cudnn_version_file}" _cudnn_version_lines
    REGEX "^#define[ \t]+CUDNN_(MAJOR|MINOR|PATCHLEVEL)[ \t]+[0-9]+")
  foreach(_part IN ITEMS MAJOR MINOR PATCHLEVEL)
    set(_cudnn_${_part} "")
    foreach(_line IN LISTS _cudnn_version_lines)
      if(_line MATCHES "^#define[ \t]+CUDNN_${_part}[ \t]+([0-9]+)")
        set(_cudnn_${_part} "${CMAKE_MATCH_1}")
      endif()
    endforeach()
  endforeach()
  if(NOT _cudnn_MAJOR STREQUAL "" AND NOT _cudnn_MINOR STREQUAL "" AND NOT _cudnn_PATCHLEVEL STREQUAL "")
    set(CUDNN_VERSION_MAJOR "${_cudnn_MAJOR}")
    set(CUDNN_VERSION_MINOR "${_cudnn_MINOR}")
    set(CUDNN_VERSION_PATCH "${_cudnn_PATCHLEVEL}")
    set(CUDNN_VERSION "${_cudnn_MAJOR}.${_cudnn_MINOR}.${_cudnn_PATCHLEVEL}")
  endif()
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CUDNN
  REQUIRED_VARS CUDNN_LIBRARY CUDNN_INCLUDE_DIR CUDNN_VERSION
  VERSION_VAR CUDNN_VERSION
  HANDLE_VERSION_RANGE)

if(CUDNN_FOUND AND NOT TARGET CUDNN::cudnn)
  add_library(CUDNN::cudnn UNKNOWN IMPORTED)
  set_target_properties(CUDNN::cudnn PROPERTIES
    IMPORTED_LOCATION "${CUDNN_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CUDNN_INCLUDE_DIR}")
endif()

mark_as_advanced(CUDNN_INCLUDE_DIR CUDNN_LIBRARY)
unset(_cudnn_hints)
unset(_cudnn_cuda_dirs)
unset(_cudnn_version_file)
unset(_cudnn_version_lines)
