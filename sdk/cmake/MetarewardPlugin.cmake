# metareward_add_plugin(<name> SOURCES <src>... [TORCH] [LIBS <lib>...]
#                       [OUTPUT_DIRECTORY <dir>] [INSTALL_DESTINATION <dir>])
#
# Builds a plugin library exactly as the shipped plugins are built: a MODULE library linked
# against metareward::sdk (and metareward::sdk_torch with TORCH), hidden visibility so only the
# MR_PLUGIN entry symbol is exported, no undefined symbols, and the libtorch version the plugin
# was configured against recorded in its build fingerprint.
function(metareward_add_plugin name)
  cmake_parse_arguments(ARG "TORCH" "OUTPUT_DIRECTORY;INSTALL_DESTINATION" "SOURCES;LIBS" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "metareward_add_plugin(${name}): SOURCES is required")
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE metareward::sdk ${ARG_LIBS})
  if(ARG_TORCH)
    if(NOT TARGET metareward::sdk_torch)
      message(FATAL_ERROR "metareward_add_plugin(${name} TORCH): the SDK was built without libtorch")
    endif()
    target_link_libraries(${name} PRIVATE metareward::sdk_torch)
  endif()
  if(NOT DEFINED METAREWARD_TORCH_VERSION)
    message(FATAL_ERROR "metareward_add_plugin: METAREWARD_TORCH_VERSION is not set "
                        "(use find_package(metareward) first)")
  endif()
  target_compile_definitions(${name} PRIVATE MR_TORCH_VERSION="${METAREWARD_TORCH_VERSION}")
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
