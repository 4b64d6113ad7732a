// The quantization layer: block layouts, scalar dequantization of every weight
// format, scalar quantization of the closed-form formats and of Q4_K, Q5_K, Q6_K.
#pragma once

#include "ember/quant/blocks.hpp"
#include "ember/quant/dequantize.hpp"
#include "ember/quant/quantize.hpp"
