// Data-file and trace helpers shared by codesign's generated testbenches.
//
// Tensor files: a 32-byte header ("CDTB", version, bytes per value,
// signedness, item count, values per item) followed by little-endian integer
// codes. A code is the raw bit pattern of a fixed-point value, sign-extended
// for signed types. Layer traces are records of (uint32 name length, name,
// uint64 value count, float64 values) per traced layer and item.

#ifndef CODESIGN_TB_COMMON_H_
#define CODESIGN_TB_COMMON_H_

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

// Defined by the testbench and read by hls4ml's nnet::save_layer_output.
namespace nnet {
extern bool trace_enabled;
extern std::map<std::string, void *> *trace_outputs;
extern size_t trace_type_size;
} // namespace nnet

namespace codesign_tb {

const unsigned kMaxReportedMismatches = 10;

struct TracedLayer {
    const char *name;
    size_t values;
};

struct TensorFile {
    uint32_t bytes_per_value = 0;
    uint32_t is_signed = 0;
    uint64_t items = 0;
    uint64_t values_per_item = 0;
    std::vector<int64_t> codes;
};

inline bool fail(const std::string &message) {
    std::cerr << "codesign_tb: " << message << std::endl;
    return false;
}

// Reads a tensor file; expected_values_per_item = 0 accepts any count.
inline bool read_tensor_file(const char *path, uint64_t expected_values_per_item, TensorFile &out) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return fail(std::string("cannot open data file ") + path);
    char magic[4];
    uint32_t version = 0;
    in.read(magic, 4);
    in.read(reinterpret_cast<char *>(&version), 4);
    in.read(reinterpret_cast<char *>(&out.bytes_per_value), 4);
    in.read(reinterpret_cast<char *>(&out.is_signed), 4);
    in.read(reinterpret_cast<char *>(&out.items), 8);
    in.read(reinterpret_cast<char *>(&out.values_per_item), 8);
    if (!in || std::memcmp(magic, "CDTB", 4) != 0 || version != 1)
        return fail(std::string("not a codesign tensor file (bad header): ") + path);
    if (expected_values_per_item != 0 && out.values_per_item != expected_values_per_item)
        return fail(std::string("data file ") + path + " holds " + std::to_string(out.values_per_item) +
                    " values per item, the design expects " + std::to_string(expected_values_per_item));
    const uint32_t width = out.bytes_per_value;
    if (width != 1 && width != 2 && width != 4 && width != 8)
        return fail(std::string("unsupported value width in ") + path);
    const uint64_t total = out.items * out.values_per_item;
    std::vector<unsigned char> raw(total * width);
    in.read(reinterpret_cast<char *>(raw.data()), raw.size());
    if (static_cast<uint64_t>(in.gcount()) != raw.size())
        return fail(std::string("data file ") + path + " is shorter than its header says");
    out.codes.resize(total);
    for (uint64_t i = 0; i < total; i++) {
        uint64_t bits = 0;
        for (uint32_t b = 0; b < width; b++)
            bits |= static_cast<uint64_t>(raw[i * width + b]) << (8 * b);
        int64_t code = static_cast<int64_t>(bits);
        if (out.is_signed && width < 8 && (bits >> (8 * width - 1)) & 1)
            code -= static_cast<int64_t>(1) << (8 * width);
        out.codes[i] = code;
    }
    return true;
}

inline bool write_tensor_file(const char *path, uint64_t items, uint64_t values_per_item, const std::vector<int64_t> &codes) {
    std::ofstream out(path, std::ios::binary);
    const uint32_t version = 1, width = 8, is_signed = 1;
    out.write("CDTB", 4);
    out.write(reinterpret_cast<const char *>(&version), 4);
    out.write(reinterpret_cast<const char *>(&width), 4);
    out.write(reinterpret_cast<const char *>(&is_signed), 4);
    out.write(reinterpret_cast<const char *>(&items), 8);
    out.write(reinterpret_cast<const char *>(&values_per_item), 8);
    out.write(reinterpret_cast<const char *>(codes.data()), codes.size() * sizeof(int64_t));
    return static_cast<bool>(out) || fail(std::string("cannot write ") + path);
}

// Fixed-point value <-> code: the code is the raw bit pattern, sign-extended
// for signed types.
template <class T> T from_code(int64_t code) {
    T value;
    value.range(T::width - 1, 0) = code;
    return value;
}

template <class T> bool is_signed_type() {
    T probe = 0;
    probe.range(T::width - 1, T::width - 1) = 1;
    return probe < 0;
}

template <class T> int64_t to_code(const T &value) {
    uint64_t bits = value.range(T::width - 1, 0).to_uint64();
    int64_t code = static_cast<int64_t>(bits);
    if (is_signed_type<T>() && T::width < 64 && (bits >> (T::width - 1)) & 1)
        code -= static_cast<int64_t>(1) << T::width;
    return code;
}

class LayerTrace {
  public:
    template <size_t N>
    LayerTrace(const char *path, const TracedLayer (&layers)[N]) : out_(path, std::ios::binary), layers_(layers, layers + N) {
        for (const TracedLayer &layer : layers_) {
            if (layer.values == 0)
                continue;
            buffers_[layer.name] = std::vector<double>(layer.values);
            pointers_[layer.name] = buffers_[layer.name].data();
        }
        nnet::trace_outputs = &pointers_;
        nnet::trace_enabled = true;
    }

    bool ok() const { return static_cast<bool>(out_); }

    void flush_item() {
        for (const TracedLayer &layer : layers_) {
            if (layer.values == 0)
                continue;
            const std::vector<double> &values = buffers_[layer.name];
            const uint32_t length = std::strlen(layer.name);
            const uint64_t count = values.size();
            out_.write(reinterpret_cast<const char *>(&length), 4);
            out_.write(layer.name, length);
            out_.write(reinterpret_cast<const char *>(&count), 8);
            out_.write(reinterpret_cast<const char *>(values.data()), count * sizeof(double));
        }
    }

  private:
    std::ofstream out_;
    std::vector<TracedLayer> layers_;
    std::map<std::string, std::vector<double>> buffers_;
    std::map<std::string, void *> pointers_;
};

} // namespace codesign_tb

#endif
