// ember: embed open-weights LLMs in C++ programs. The public surface in one include.
//
// Exactly one .cpp of the host defines EMBER_IMPLEMENTATION before including this
// header: that translation unit compiles the Highway backend's per-target code.
#pragma once

#include "ember/chat/conversation.hpp"
#include "ember/chat/json.hpp"
#include "ember/chat/template.hpp"
#include "ember/core/log.hpp"
#include "ember/core/result.hpp"
#include "ember/core/thread_pool.hpp"
#include "ember/gguf/reader.hpp"
#include "ember/gguf/writer.hpp"
#include "ember/kernels/kernels.hpp"
#include "ember/model/card.hpp"
#include "ember/model/model.hpp"
#include "ember/model/session.hpp"
#include "ember/quant/quant.hpp"
#include "ember/sampling/sampler.hpp"
#include "ember/tokenizer/tokenizer.hpp"
