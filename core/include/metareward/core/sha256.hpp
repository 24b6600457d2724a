/// @file sha256.hpp
/// SHA-256 (FIPS 180-4) of files and strings, for the run manifest's plugin and config hashes.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace mr::core {

/// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

/// Lower-case hex SHA-256 of the file's bytes; throws sdk::DataError naming the file when it
/// cannot be read.
std::string sha256_file_hex(const std::filesystem::path& file);

}  // namespace mr::core
