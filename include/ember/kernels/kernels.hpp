// The kernel backends, each a policy type with the same static functions:
//   Reference    scalar oracle (reference.hpp)
//   Highway      runtime-dispatched SIMD, needs libhwy (highway.hpp)
//   Xsimd<Arch>  header-only SIMD, arch fixed at compile time (xsimd.hpp)
// Model<Backend> takes one of them as its template argument.
//
// One TU of the host defines EMBER_IMPLEMENTATION before including this (or
// <ember/ember.hpp>); that TU compiles Highway's per-target code.
#pragma once

#include "ember/kernels/highway.hpp"
#include "ember/kernels/matrix.hpp"
#include "ember/kernels/reference.hpp"
#include "ember/kernels/xsimd.hpp"

#ifdef EMBER_IMPLEMENTATION
#include "ember/kernels/highway_impl.hpp"
#endif
