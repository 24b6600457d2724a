# metareward_add_plugin(<name> SOURCES <src>... [TORCH] [LIBS <lib>...]
#                       [OUTPUT_DIRECTORY <dir>] [INSTALL_DESTINATION <dir>])
#
# Builds a plugin library exactly as the shipped plugins are built: a MODULE library linked
# against metareward::sdk (and metareward::sdk_torch with TORCH, which needs
# find_package(metareward COMPONENTS torch)), hidden visibility so only the MR_PLUGIN entry symbol
# is exported, and no undefined symbols. A TORCH plugin records the libtorch version it was
# configured against in its build fingerprint; a text-level plugin records the SDK's (it never
# touches libtorch, so it builds on a machine without it).
function(metareward_add_plugin name)
  cmake_parse_arguments(ARG "TORCH" "OUTPUT_DIRECTORY;INSTALL_DESTINATION" "SOURCES;LIBS" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "metareward_add_plugin(${name}): SOURCES is required")
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE metareward::sdk ${ARG_LIBS})
  if(ARG_TORCH)
    if(NOT TARGET metareward::sdk_torch)
      message(FATAL_ERROR "metareward_add_plugin(${name} TORCH): no metareward::sdk_torch; use "
                          "find_package(metareward COMPONENTS torch) (and an SDK built with libtorch)")
    endif()
    if(NOT DEFINED METAREWARD_TORCH_VERSION OR METAREWARD_TORCH_VERSION STREQUAL "none")
      message(FATAL_ERROR "metareward_add_plugin(${name} TORCH): METAREWARD_TORCH_VERSION is not "
                          "set (find_package(metareward COMPONENTS torch) sets it)")
    endif()
    target_link_libraries(${name} PRIVATE metareward::sdk_torch)
    target_compile_definitions(${name} PRIVATE MR_TORCH_VERSION="${METAREWARD_TORCH_VERSION}")
  endif()
  set_target_properties(${name} PROPERTIES
    PREFIX "lib"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_link_options(${name} PRIVATE "LINKER:--no-undefined")
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIRECTORY})
  elseif(DEFINED MR_BUILD_PLUGIN_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${MR_BUILD_PLUGIN_DIR})
  endif()
  if(ARG_INSTALL_DESTINATION)
    install(TARGETS ${name} LIBRARY DESTINATION ${ARG_INSTALL_DESTINATION})
  endif()
endfunction()
