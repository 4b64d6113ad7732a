// The doctest main of the one test binary, and the TU that compiles Highway's per-target
// kernels (EMBER_IMPLEMENTATION); it rarely changes, so it rarely recompiles.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#define EMBER_IMPLEMENTATION
#include "ember/kernels/kernels.hpp"
