// The quantization layer: block layouts, scalar dequantization of every weight
// format, scalar quantization of the closed-form formats.
#pragma once

#include "ember/quant/blocks.hpp"
#include "ember/quant/dequantize.hpp"
#include "ember/quant/quantize.hpp"
