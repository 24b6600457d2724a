/// @file version.hpp
/// SDK version, plugin API version and the build fingerprint a plugin and the host must share.
#pragma once

#include "metareward/sdk/build_config.hpp"

/// Bumped on any change to a class layout, vtable or descriptor in sdk/ (C++ vtables break on
/// additions, so the host requires equality).
#define MR_PLUGIN_API_VERSION 10

#define MR_STRINGIFY_IMPL(x) #x
#define MR_STRINGIFY(x) MR_STRINGIFY_IMPL(x)

#if defined(__clang__)
#define MR_COMPILER_ID "clang-" MR_STRINGIFY(__clang_major__)
#elif defined(__GNUC__)
#define MR_COMPILER_ID "gcc-" MR_STRINGIFY(__GNUC__)
#else
#define MR_COMPILER_ID "unknown-compiler"
#endif

#if defined(_GLIBCXX_USE_CXX11_ABI)
#define MR_CXX11_ABI MR_STRINGIFY(_GLIBCXX_USE_CXX11_ABI)
#else
#define MR_CXX11_ABI "n/a"
#endif

#if defined(_GLIBCXX_DEBUG)
#define MR_GLIBCXX_DEBUG "1"
#else
#define MR_GLIBCXX_DEBUG "0"
#endif

/// Everything that must match between a plugin and the host for C++ objects (std::string,
/// std::function, torch::Tensor) to cross the boundary safely. Evaluated where it is expanded,
/// so a plugin records the compiler and flags it was really built with.
/// `MR_TORCH_VERSION` comes from CMake (metareward_add_plugin passes the libtorch the plugin
/// was configured against); see build_config.hpp.
#define MR_BUILD_FINGERPRINT                                                              \
  "compiler=" MR_COMPILER_ID " cxx11abi=" MR_CXX11_ABI " glibcxx_debug=" MR_GLIBCXX_DEBUG \
  " torch=" MR_TORCH_VERSION " sdk=" MR_SDK_VERSION_MAJOR_STR
