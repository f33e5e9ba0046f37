// Baseline JPEG decoder for Vitis HLS, bit-exact with codesign.jpeg.decode_payload.
//
// jpeg::decode<CONFIG_T>(payload, length, pixels) reads the `length` bytes of
// one image's entropy-coded scan data from `payload` and writes the image's
// width * height pixels to `pixels` in raster order. The payload is the scan
// exactly as codesign.jpeg.split_jpeg returns it: byte-stuffed (0xFF00 for a
// data byte 0xFF) and with the RSTn markers between restart intervals. Every
// table and the image size come from CONFIG_T, the struct that
// codesign.jpeg.hls writes into a configuration header.
//
// jpeg::decode_frame<CONFIG_T>(frames, pixels) decodes one frame of a byte
// stream that carries images back to back: a 16-bit big-endian payload
// length, then the payload. It reads exactly 2 + length bytes, so the next
// frame starts right after.
//
// Supported streams: baseline sequential Huffman coding, 8-bit samples, a
// single scan, either 1 component (greyscale) or 3 components whose
// first component is sampled h_samp x v_samp (each 1 or 2: 4:4:4, 4:2:2,
// 4:4:0, 4:2:0) and the other two 1x1. Any width and height, optional
// restart intervals.
//
// Output: pixel_t<N> with N = CONFIG_T::n_components. For N = 3, c[0], c[1]
// and c[2] are R, G and B, or the three components unchanged when
// CONFIG_T::ycbcr_to_rgb is false (Adobe RGB files). For N = 1, c[0] is the
// grey level. Each c[i] is the 8-bit sample itself, so an ap_ufixed<8,0>
// input of the detector takes it as its bit pattern (value = c[i] / 256).
//
// Pipeline (one DATAFLOW region, stages connected by FIFOs):
//   unstuff_payload  bytes -> tokens: removes 0xFF00 stuffing, marks markers
//                    (unstuff_frame reads the length field first)
//   decode_huffman   tokens -> quantized coefficients, natural order, 64 per block
//   inverse_dct      dequantization and the islow IDCT of jidctint.c
//   raster_stage     MCU order -> raster order, fancy chroma upsampling
//                    (jdsample.c) and YCbCr -> RGB (jdcolor.c)
//
// Bounded work: every loop either has a trip count fixed by the
// configuration (MCUs, blocks, at most 63 AC steps per block) or reads one
// payload byte or token per iteration, and the unstuffer reads `length`
// bytes and writes at most `length` + 1 tokens.
// The decoder reads exactly `length` payload bytes and writes exactly
// width * height pixels for any input, so a corrupt or truncated payload
// yields wrong pixels but never a hang or a read past the image's bytes.
// Where libjpeg-turbo warns about corrupt data, this decoder continues as
// described at the places that handle it.
//
// Resource note, read from the code (no synthesis has been run). Arrays are
// listed with their sizes so that an estimator can map them to BRAM, LUTRAM
// or registers:
//   ROM: quantization tables (n_components x 64 x 16 bit) and Huffman
//     tables (per distinct table 17 limits and 17 offsets, declared 32 bit
//     and partitioned for the parallel code-length compare, and 256 symbols
//     of 8 bit), zigzag order (64 x 6 bit).
//   Line buffers: luma 8*v_samp lines (plus one saved line when v_samp = 2)
//     of 8*h_samp*mcus_x samples, and chroma 2 x 9 lines of 8*mcus_x
//     samples. That is one MCU row plus the context line that fancy
//     vertical upsampling needs.
//   Block buffers: 64 x 16 bit coefficients in the Huffman stage, and
//     64 x 43 bit dequantized values plus a 64 x 32 bit workspace in the
//     IDCT stage.
//   Multipliers: one 16 x 16 bit dequantization product per coefficient.
//     The IDCT has 12 constant multiplications per 8-point pass and 16
//     passes per block, in 43-bit (pass 1) and 28-bit (pass 2) modular
//     arithmetic. YCbCr -> RGB takes 4 constant multiplications per pixel
//     in place of the four 256-entry tables of jdcolor.c, which hold the
//     same products. Fancy upsampling needs only adds and shifts.
//
// Vitis HLS needs a non-template top function, for example:
//   void jpeg_top(hls::stream<ap_uint<8> > &payload, ap_uint<32> length,
//                 hls::stream<jpeg::pixel_t<3> > &pixels) {
//       jpeg::decode<my_config>(payload, length, pixels);
//   }
// NOTE: the interface pragmas of such a top and the II that the PIPELINE
// pragmas reach have not been checked with Vitis HLS.

#ifndef CODESIGN_JPEG_DECODER_H_
#define CODESIGN_JPEG_DECODER_H_

#include "ap_int.h"
#include "hls_stream.h"

namespace jpeg {

// One output pixel (see the file header for the channel order).
template <unsigned N> struct pixel_t {
    ap_uint<8> c[N];
};

// One item of unstuffed scan data.
struct token_t {
    ap_uint<8> value; // data byte, or the marker code that followed 0xFF
    bool is_marker;
    bool is_end; // end of the payload, with value and is_marker unused
};

typedef ap_int<16> coef_t;  // quantized coefficient, 16 bit like libjpeg's JCOEF
typedef ap_uint<8> sample_t;

const unsigned kBlockSize = 64;
const unsigned kMaxCodeLength = 16;
// A Huffman code (at most 16 bits) and its magnitude bits (at most 15).
const unsigned kBitsPerSymbol = 31;

// Natural (row-major) index of each zigzag position, ITU-T T.81 Figure A.6.
static const unsigned char kZigzagToNatural[kBlockSize] = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48,
    41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23,
    30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63};

// Sizes that follow from the configuration.
template <class CONFIG_T> struct geometry {
    static const unsigned mcu_width = 8 * CONFIG_T::h_samp;
    static const unsigned mcu_height = 8 * CONFIG_T::v_samp;
    static const unsigned mcus_x = (CONFIG_T::width + mcu_width - 1) / mcu_width;
    static const unsigned mcus_y = (CONFIG_T::height + mcu_height - 1) / mcu_height;
    static const unsigned mcu_count = mcus_x * mcus_y;
    static const unsigned luma_blocks = CONFIG_T::h_samp * CONFIG_T::v_samp;
    static const unsigned blocks_per_mcu = CONFIG_T::n_components == 1 ? 1 : luma_blocks + 2;
    static const unsigned block_count = mcu_count * blocks_per_mcu;
    // Samples per line of the MCU-row buffers, a whole number of MCUs.
    static const unsigned luma_stride = mcus_x * mcu_width;
    static const unsigned chroma_stride = mcus_x * 8;
    // libjpeg's downsampled_width and downsampled_height of the chroma components.
    static const unsigned chroma_width = (CONFIG_T::width + CONFIG_T::h_samp - 1) / CONFIG_T::h_samp;
    static const unsigned chroma_height = (CONFIG_T::height + CONFIG_T::v_samp - 1) / CONFIG_T::v_samp;
    // jdsample.c uses the triangle ("fancy") filter for a horizontal ratio
    // of 2 only when the downsampled width is above 2, and otherwise
    // replicates samples in both directions.
    static const bool horizontal_fancy = CONFIG_T::h_samp == 2 && chroma_width > 2;
    static const bool vertical_fancy =
        CONFIG_T::v_samp == 2 && (CONFIG_T::h_samp == 1 || chroma_width > 2);
};

// Component (0 luma, 1 Cb, 2 Cr) of the block at position `block` of an MCU.
template <class CONFIG_T> unsigned component_of_block(unsigned block) {
#pragma HLS INLINE
    const unsigned luma_blocks = geometry<CONFIG_T>::luma_blocks;
    return block < luma_blocks ? 0 : block - luma_blocks + 1;
}

// ---------------------------------------------------------------------------
// Stage 1: byte unstuffing and marker detection.

// Reads exactly `length` bytes and writes one token per data byte or marker,
// then one end token. 0xFF00 is a data byte 0xFF, and 0xFF followed by more
// 0xFF fill bytes and a code is one marker, as in jdhuff.c
// (jpeg_fill_bit_buffer). A 0xFF at the very end of the payload is dropped.
template <class CONFIG_T>
void unstuff_payload(hls::stream<ap_uint<8> > &payload, ap_uint<32> length, hls::stream<token_t> &tokens) {
    bool after_ff = false;
UnstuffLoop:
    for (ap_uint<33> i = 0; i < length; i++) {
#pragma HLS PIPELINE II=1
        ap_uint<8> byte = payload.read();
        token_t token;
        token.value = byte;
        token.is_marker = false;
        token.is_end = false;
        bool emit = true;
        if (after_ff) {
            if (byte == 0xFF) {
                emit = false; // fill byte before a marker
            } else if (byte == 0x00) {
                token.value = 0xFF;
                after_ff = false;
            } else {
                token.is_marker = true;
                after_ff = false;
            }
        } else if (byte == 0xFF) {
            emit = false;
            after_ff = true;
        }
        if (emit) {
            tokens.write(token);
        }
    }
    token_t end;
    end.value = 0;
    end.is_marker = false;
    end.is_end = true;
    tokens.write(end);
}

// Bytes of the length field in front of each payload in a frame.
const unsigned kFrameHeaderBytes = 2;

// Stage 1 of decode_frame: reads the frame's 16-bit big-endian payload
// length, then unstuffs exactly that many payload bytes.
template <class CONFIG_T> void unstuff_frame(hls::stream<ap_uint<8> > &frames, hls::stream<token_t> &tokens) {
    // Two statements, because the order of two reads in one expression is unspecified.
    ap_uint<16> high = frames.read();
    ap_uint<16> low = frames.read();
    ap_uint<32> length = (high << 8) | low;
    unstuff_payload<CONFIG_T>(frames, length, tokens);
}

// ---------------------------------------------------------------------------
// Stage 2: Huffman decoding and DC prediction.

// Bit buffer over the token stream. Like jpeg_fill_bit_buffer in jdhuff.c,
// it appends zero bytes once it has read a marker or the end token, so the
// decoder never reads data past a marker or past the payload.
struct bit_reader_t {
    ap_uint<40> bits; // the newest `count` bits, the oldest at bit count - 1
    ap_uint<6> count;
    bool at_marker;   // read a marker that no restart has consumed yet
    bool at_end;      // read the end token
};

inline void reset_bit_reader(bit_reader_t &reader) {
#pragma HLS INLINE
    reader.bits = 0;
    reader.count = 0;
    reader.at_marker = false;
    reader.at_end = false;
}

// Buffers at least kBitsPerSymbol bits, one token per appended byte.
inline void fill_bits(bit_reader_t &reader, hls::stream<token_t> &tokens) {
#pragma HLS INLINE
FillLoop:
    for (unsigned i = 0; i < 4; i++) {
        if (reader.count < 32) {
            ap_uint<8> byte = 0;
            if (!reader.at_marker && !reader.at_end) {
                token_t token = tokens.read();
                if (token.is_end) {
                    reader.at_end = true;
                } else if (token.is_marker) {
                    reader.at_marker = true;
                } else {
                    byte = token.value;
                }
            }
            reader.bits = (reader.bits << 8) | byte;
            reader.count += 8;
        }
    }
}

// Removes and returns the next `size` bits (0..16). Needs count >= size.
inline ap_uint<16> take_bits(bit_reader_t &reader, unsigned size) {
#pragma HLS INLINE
    ap_uint<40> shifted = reader.bits >> (reader.count - size);
    reader.count -= size;
    return shifted & ((ap_uint<17>(1) << size) - 1);
}

// Decodes the signed value of `size` magnitude bits (T.81 F.2.2.1, EXTEND).
inline ap_int<17> extend(ap_uint<16> bits, unsigned size) {
#pragma HLS INLINE
    ap_int<17> value = bits;
    if (size != 0 && bits < (ap_uint<17>(1) << (size - 1))) {
        value = value - ((ap_int<18>(1) << size) - 1);
    }
    return value;
}

// Decodes one Huffman symbol with table `table`. Needs count >= 16.
//
// A code of length l is the first l bits when they are below
// CONFIG_T::huff_limit(table, l) (maxcode[l] + 1 in jdhuff.c), and the
// shortest such length wins, which is the loop of jpeg_huff_decode done as
// 16 parallel comparisons. A bit pattern that no code matches (corrupt data)
// consumes 16 bits and yields symbol 0: a DC difference of 0 or an EOB.
template <class CONFIG_T> ap_uint<8> decode_symbol(bit_reader_t &reader, unsigned table) {
#pragma HLS INLINE
    ap_uint<16> window = reader.bits >> (reader.count - kMaxCodeLength);
    unsigned length = 0;
    ap_uint<16> code = 0;
CodeLengthLoop:
    for (int l = kMaxCodeLength; l >= 1; l--) {
#pragma HLS UNROLL
        ap_uint<16> candidate = window >> (kMaxCodeLength - l);
        if (candidate < CONFIG_T::huff_limit(table, l)) {
            length = l;
            code = candidate;
        }
    }
    if (length == 0) {
        reader.count -= kMaxCodeLength;
        return 0;
    }
    reader.count -= length;
    ap_int<18> index = CONFIG_T::huff_offset(table, length) + ap_int<18>(code);
    return CONFIG_T::huff_symbol(table, index & 0xFF);
}

// Decodes one block and writes its 64 coefficients in natural order.
// `prediction` is the component's DC predictor, which wraps at 16 bits like
// the int16 coefficient it produces.
template <class CONFIG_T>
void decode_block(bit_reader_t &reader, hls::stream<token_t> &tokens, unsigned component, coef_t &prediction,
                  hls::stream<coef_t> &coefficients) {
    coef_t block[kBlockSize];
ClearLoop:
    for (unsigned k = 0; k < kBlockSize; k++) {
#pragma HLS UNROLL
        block[k] = 0;
    }

    fill_bits(reader, tokens);
    unsigned dc_size = decode_symbol<CONFIG_T>(reader, CONFIG_T::dc_table(component)) & 15;
    prediction += extend(take_bits(reader, dc_size), dc_size);
    block[0] = prediction;

    // Each step advances k by at least 1, so at most 63 steps.
    unsigned k = 1;
ACLoop:
    for (unsigned step = 1; step < kBlockSize; step++) {
#pragma HLS PIPELINE
        if (k >= kBlockSize) {
            break;
        }
        fill_bits(reader, tokens);
        ap_uint<8> symbol = decode_symbol<CONFIG_T>(reader, CONFIG_T::ac_table(component));
        unsigned run = symbol >> 4;
        unsigned size = symbol & 15;
        if (size != 0) {
            k += run;
            if (k >= kBlockSize) {
                break; // corrupt data: a run past coefficient 63 ends the block
            }
            block[kZigzagToNatural[k]] = extend(take_bits(reader, size), size);
            k++;
        } else if (run == 15) {
            k += 16; // ZRL: 16 zero coefficients
        } else {
            break; // EOB, and like jdhuff.c also for run/size 0x10..0xE0
        }
    }

WriteLoop:
    for (unsigned i = 0; i < kBlockSize; i++) {
#pragma HLS PIPELINE II=1
        coefficients.write(block[i]);
    }
}

// Consumes the marker that ends a restart interval and resynchronizes to
// byte boundary, dropping the interval's padding bits. Any marker is taken
// as the expected RSTn: in a valid stream it is one, and for corrupt data
// the output only has to terminate.
inline void process_restart(bit_reader_t &reader, hls::stream<token_t> &tokens) {
#pragma HLS INLINE
    if (!reader.at_marker) {
    SeekMarkerLoop:
        while (!reader.at_end) {
            token_t token = tokens.read();
            if (token.is_end) {
                reader.at_end = true;
            } else if (token.is_marker) {
                break;
            }
        }
    }
    reader.at_marker = false;
    reader.bits = 0;
    reader.count = 0;
}

// Decodes every block of the image, then reads the remaining tokens up to
// and including the end token, so the stage consumes all that stage 1 wrote.
template <class CONFIG_T> void decode_huffman(hls::stream<token_t> &tokens, hls::stream<coef_t> &coefficients) {
    typedef geometry<CONFIG_T> G;
    bit_reader_t reader;
    reset_bit_reader(reader);
    coef_t predictions[3] = {0, 0, 0};
    unsigned mcus_in_interval = 0;

MCULoop:
    for (unsigned mcu = 0; mcu < G::mcu_count; mcu++) {
        if (CONFIG_T::restart_interval != 0 && mcus_in_interval == CONFIG_T::restart_interval) {
            process_restart(reader, tokens);
            predictions[0] = 0;
            predictions[1] = 0;
            predictions[2] = 0;
            mcus_in_interval = 0;
        }
    BlockLoop:
        for (unsigned block = 0; block < G::blocks_per_mcu; block++) {
            unsigned component = component_of_block<CONFIG_T>(block);
            decode_block<CONFIG_T>(reader, tokens, component, predictions[component], coefficients);
        }
        mcus_in_interval++;
    }

DrainLoop:
    while (!reader.at_end) {
        token_t token = tokens.read();
        if (token.is_end) {
            reader.at_end = true;
        }
    }
}

// ---------------------------------------------------------------------------
// Stage 3: dequantization and inverse DCT (jpeg_idct_islow, jidctint.c).
//
// jidctint.c computes in 64-bit JLONG, wraps the pass-1 results to 32-bit
// int and reads the range-limit table at index DESCALE(x, 18) & 1023. Each
// output therefore depends only on x modulo 2^(11 + 32) in pass 1 (descale
// by 11 bits, keep 32) and modulo 2^(18 + 10) in pass 2. Sums, differences
// and products are exact modulo 2^n when computed modulo 2^n, so these
// widths give the same bits as the 64-bit code for every input, including
// the wrap-around of out-of-range coefficients.
typedef ap_int<43> pass1_t;
typedef ap_int<32> workspace_t;
typedef ap_int<28> pass2_t;

const int kConstBits = 13;
const int kPass1Bits = 2;

// One 8-point pass of jidctint.c before descaling, in the modular type T.
template <class T> void idct_8point(const T x[8], T y[8]) {
#pragma HLS INLINE
    // Even part.
    T z2 = x[2];
    T z3 = x[6];
    T z1 = (z2 + z3) * 4433;   // FIX_0_541196100
    T tmp2 = z1 + z3 * -15137; // FIX_1_847759065
    T tmp3 = z1 + z2 * 6270;   // FIX_0_765366865
    // A multiplication, not a left shift, because shifting a negative
    // value is undefined behaviour in C++14 (same bits with g++).
    T tmp0 = T(x[0] + x[4]) * (1 << kConstBits);
    T tmp1 = T(x[0] - x[4]) * (1 << kConstBits);
    T tmp10 = tmp0 + tmp3;
    T tmp13 = tmp0 - tmp3;
    T tmp11 = tmp1 + tmp2;
    T tmp12 = tmp1 - tmp2;

    // Odd part.
    T odd0 = x[7];
    T odd1 = x[5];
    T odd2 = x[3];
    T odd3 = x[1];
    T s1 = odd0 + odd3;
    T s2 = odd1 + odd2;
    T s3 = odd0 + odd2;
    T s4 = odd1 + odd3;
    T z5 = (s3 + s4) * 9633; // FIX_1_175875602
    odd0 = odd0 * 2446;      // FIX_0_298631336
    odd1 = odd1 * 16819;     // FIX_2_053119869
    odd2 = odd2 * 25172;     // FIX_3_072711026
    odd3 = odd3 * 12299;     // FIX_1_501321110
    s1 = s1 * -7373;         // FIX_0_899976223
    s2 = s2 * -20995;        // FIX_2_562915447
    s3 = s3 * -16069 + z5;   // FIX_1_961570560
    s4 = s4 * -3196 + z5;    // FIX_0_390180644
    odd0 = odd0 + s1 + s3;
    odd1 = odd1 + s2 + s4;
    odd2 = odd2 + s2 + s3;
    odd3 = odd3 + s1 + s4;

    y[0] = tmp10 + odd3;
    y[7] = tmp10 - odd3;
    y[1] = tmp11 + odd2;
    y[6] = tmp11 - odd2;
    y[2] = tmp12 + odd1;
    y[5] = tmp12 - odd1;
    y[3] = tmp13 + odd0;
    y[4] = tmp13 - odd0;
}

// Applies the post-IDCT range limit of jidctint.c to a pass-2 sum: the
// table index is DESCALE(sum, 18) + 128 wrapped to 0..1023, which maps
// -384..639 onto 0..255 clamped.
inline sample_t range_limit(pass2_t sum) {
#pragma HLS INLINE
    const int shift = kConstBits + kPass1Bits + 3;
    pass2_t rounded = sum + (pass2_t(1) << (shift - 1));
    ap_uint<10> index = ap_uint<10>(rounded >> shift) + 512;
    int value = int(index) - 384;
    if (value < 0) {
        return 0;
    }
    if (value > 255) {
        return 255;
    }
    return value;
}

// Dequantizes and inverse-transforms every block and writes 64 samples per
// block in row-major order.
template <class CONFIG_T> void inverse_dct(hls::stream<coef_t> &coefficients, hls::stream<sample_t> &samples) {
    typedef geometry<CONFIG_T> G;
    unsigned block_in_mcu = 0;
BlockLoop:
    for (unsigned block = 0; block < G::block_count; block++) {
        unsigned component = component_of_block<CONFIG_T>(block_in_mcu);
        block_in_mcu = block_in_mcu + 1 == G::blocks_per_mcu ? 0 : block_in_mcu + 1;

        pass1_t dequantized[kBlockSize];
    DequantizeLoop:
        for (unsigned k = 0; k < kBlockSize; k++) {
#pragma HLS PIPELINE II=1
            // libjpeg-turbo keeps quantization values in 16-bit ISLOW_MULT_TYPE.
            ap_int<16> quant = CONFIG_T::quant(component, k);
            dequantized[k] = ap_int<32>(coefficients.read() * quant);
        }

        // Pass 1 transforms columns: input k is coefficient row k.
        workspace_t workspace[kBlockSize];
    ColumnLoop:
        for (unsigned column = 0; column < 8; column++) {
#pragma HLS PIPELINE
            pass1_t x[8];
            pass1_t y[8];
            for (unsigned k = 0; k < 8; k++) {
                x[k] = dequantized[k * 8 + column];
            }
            idct_8point<pass1_t>(x, y);
            for (unsigned k = 0; k < 8; k++) {
                const int shift = kConstBits - kPass1Bits;
                workspace[k * 8 + column] = (y[k] + (pass1_t(1) << (shift - 1))) >> shift;
            }
        }

        // Pass 2 transforms rows: input k is workspace column k.
    RowLoop:
        for (unsigned row = 0; row < 8; row++) {
#pragma HLS PIPELINE
            pass2_t x[8];
            pass2_t y[8];
            for (unsigned k = 0; k < 8; k++) {
                x[k] = workspace[row * 8 + k];
            }
            idct_8point<pass2_t>(x, y);
            for (unsigned k = 0; k < 8; k++) {
                samples.write(range_limit(y[k]));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Stage 4: MCU order to raster order, chroma upsampling, colour conversion.

// Greyscale: one 8x8 block per MCU, one MCU row of 8 lines buffered.
template <class CONFIG_T> void raster_gray(hls::stream<sample_t> &samples, hls::stream<pixel_t<1> > &pixels) {
    typedef geometry<CONFIG_T> G;
    sample_t lines[8][G::luma_stride];

MCURowLoop:
    for (unsigned mcu_row = 0; mcu_row < G::mcus_y; mcu_row++) {
    ReadLoop:
        for (unsigned mcu_x = 0; mcu_x < G::mcus_x; mcu_x++) {
            for (unsigned i = 0; i < 8; i++) {
                for (unsigned j = 0; j < 8; j++) {
#pragma HLS PIPELINE II=1
                    lines[i][mcu_x * 8 + j] = samples.read();
                }
            }
        }
    WriteLineLoop:
        for (unsigned i = 0; i < 8; i++) {
            if (mcu_row * 8 + i >= CONFIG_T::height) {
                break;
            }
            for (unsigned x = 0; x < CONFIG_T::width; x++) {
#pragma HLS PIPELINE II=1
                pixel_t<1> pixel;
                pixel.c[0] = lines[i][x];
                pixels.write(pixel);
            }
        }
    }
}

// Line buffers of the colour path. Luma line mcu_height and chroma line 8
// are saved copies of the last line of the previous MCU row (used only when
// v_samp = 2).
template <class CONFIG_T> struct color_lines {
    static const unsigned saved_luma = geometry<CONFIG_T>::mcu_height;
    static const unsigned saved_chroma = 8;
    sample_t luma[geometry<CONFIG_T>::mcu_height + 1][geometry<CONFIG_T>::luma_stride];
    sample_t chroma[2][9][geometry<CONFIG_T>::chroma_stride];
};

// Reads one MCU row of samples into the line buffers.
template <class CONFIG_T> void read_mcu_row(hls::stream<sample_t> &samples, color_lines<CONFIG_T> &lines) {
    typedef geometry<CONFIG_T> G;
MCULoop:
    for (unsigned mcu_x = 0; mcu_x < G::mcus_x; mcu_x++) {
    LumaBlockLoop:
        for (unsigned block = 0; block < G::luma_blocks; block++) {
            unsigned top = (block / CONFIG_T::h_samp) * 8;
            unsigned left = mcu_x * G::mcu_width + (block % CONFIG_T::h_samp) * 8;
            for (unsigned i = 0; i < 8; i++) {
                for (unsigned j = 0; j < 8; j++) {
#pragma HLS PIPELINE II=1
                    lines.luma[top + i][left + j] = samples.read();
                }
            }
        }
    ChromaBlockLoop:
        for (unsigned channel = 0; channel < 2; channel++) {
            for (unsigned i = 0; i < 8; i++) {
                for (unsigned j = 0; j < 8; j++) {
#pragma HLS PIPELINE II=1
                    lines.chroma[channel][i][mcu_x * 8 + j] = samples.read();
                }
            }
        }
    }
}

// Returns the vertically filtered value of chroma column j: 3 * nearer row
// + farther row when vertical fancy upsampling applies (h1v2 and h2v2 of
// jdsample.c), else the sample of the centre row.
template <class CONFIG_T>
int chroma_column(const color_lines<CONFIG_T> &lines, unsigned channel, unsigned center, unsigned neighbour,
                  unsigned j) {
#pragma HLS INLINE
    int value = lines.chroma[channel][center][j];
    if (geometry<CONFIG_T>::vertical_fancy) {
        value = 3 * value + lines.chroma[channel][neighbour][j];
    }
    return value;
}

// Returns the upsampled chroma sample at horizontal phase `phase` (0 left,
// 1 right output sample) from the vertically filtered columns j - 1, j and
// j + 1. The rounding biases are those of jdsample.c.
template <class CONFIG_T> int upsample_chroma(int previous, int current, int next, unsigned phase, bool lower) {
#pragma HLS INLINE
    typedef geometry<CONFIG_T> G;
    if (G::horizontal_fancy && G::vertical_fancy) {
        // h2v2_fancy_upsample
        return phase == 0 ? (3 * current + previous + 8) >> 4 : (3 * current + next + 7) >> 4;
    }
    if (G::horizontal_fancy) {
        // h2v1_fancy_upsample
        return phase == 0 ? (3 * current + previous + 1) >> 2 : (3 * current + next + 2) >> 2;
    }
    if (G::vertical_fancy) {
        // h1v2_fancy_upsample
        return (current + (lower ? 2 : 1)) >> 2;
    }
    return current; // full-size component or sample replication
}

inline ap_uint<8> clamp_sample(ap_int<12> value) {
#pragma HLS INLINE
    if (value < 0) {
        return 0;
    }
    if (value > 255) {
        return 255;
    }
    return value;
}

// Converts one pixel as ycc_rgb_convert in jdcolor.c. The products equal
// the entries of its Cr_r, Cb_b, Cr_g and Cb_g tables (16-bit fixed point,
// rounding constant folded into the Cb terms).
template <class CONFIG_T> pixel_t<3> convert_pixel(sample_t luma, int first, int second) {
#pragma HLS INLINE
    pixel_t<3> pixel;
    if (!CONFIG_T::ycbcr_to_rgb) {
        pixel.c[0] = luma;
        pixel.c[1] = first;
        pixel.c[2] = second;
        return pixel;
    }
    const int one_half = 1 << 15;
    ap_int<9> cb = first - 128;
    ap_int<9> cr = second - 128;
    ap_int<26> red = (ap_int<26>(91881) * cr + one_half) >> 16;    // FIX(1.40200)
    ap_int<26> blue = (ap_int<26>(116130) * cb + one_half) >> 16;  // FIX(1.77200)
    ap_int<26> green = (ap_int<26>(-22554) * cb + one_half + ap_int<26>(-46802) * cr) >> 16; // FIX(0.34414), FIX(0.71414)
    pixel.c[0] = clamp_sample(ap_int<12>(luma) + red);
    pixel.c[1] = clamp_sample(ap_int<12>(luma) + green);
    pixel.c[2] = clamp_sample(ap_int<12>(luma) + blue);
    return pixel;
}

// Writes one output line from luma line `luma_line` and chroma lines
// `center` and `neighbour`. `center` is the chroma row of the line. With
// vertical fancy upsampling, `neighbour` is the row above (upper output
// line) or below (`lower` output line), already clamped to the image edge.
template <class CONFIG_T>
void write_color_line(const color_lines<CONFIG_T> &lines, unsigned luma_line, unsigned center, unsigned neighbour,
                      bool lower, hls::stream<pixel_t<3> > &pixels) {
    typedef geometry<CONFIG_T> G;
    const unsigned last = G::chroma_width - 1;
    int previous[2];
    int current[2];
    int next[2];
    for (unsigned channel = 0; channel < 2; channel++) {
        current[channel] = chroma_column<CONFIG_T>(lines, channel, center, neighbour, 0);
        previous[channel] = current[channel]; // the left edge replicates
        next[channel] = chroma_column<CONFIG_T>(lines, channel, center, neighbour, last > 0 ? 1 : 0);
    }

ChromaColumnLoop:
    for (unsigned j = 0; j < G::chroma_width; j++) {
        for (unsigned phase = 0; phase < CONFIG_T::h_samp; phase++) {
#pragma HLS PIPELINE II=1
            unsigned x = j * CONFIG_T::h_samp + phase;
            if (x < CONFIG_T::width) {
                int first = upsample_chroma<CONFIG_T>(previous[0], current[0], next[0], phase, lower);
                int second = upsample_chroma<CONFIG_T>(previous[1], current[1], next[1], phase, lower);
                pixels.write(convert_pixel<CONFIG_T>(lines.luma[luma_line][x], first, second));
            }
        }
        unsigned following = j + 2 <= last ? j + 2 : last; // the right edge replicates
        for (unsigned channel = 0; channel < 2; channel++) {
            previous[channel] = current[channel];
            current[channel] = next[channel];
            next[channel] = chroma_column<CONFIG_T>(lines, channel, center, neighbour, following);
        }
    }
}

// Three components, luma sampled h_samp x v_samp and chroma 1x1.
//
// With v_samp = 2 the last line of an MCU row needs the first chroma row
// of the next MCU row, so it is written after that row has been read, from
// the saved copies of its luma line and chroma row.
template <class CONFIG_T> void raster_color(hls::stream<sample_t> &samples, hls::stream<pixel_t<3> > &pixels) {
    typedef geometry<CONFIG_T> G;
    typedef color_lines<CONFIG_T> L;
    L lines;
    const unsigned last_chroma_row = G::chroma_height - 1;

MCURowLoop:
    for (unsigned mcu_row = 0; mcu_row < G::mcus_y; mcu_row++) {
        read_mcu_row<CONFIG_T>(samples, lines);

        if (CONFIG_T::v_samp == 1) {
        LineLoop:
            for (unsigned line = 0; line < G::mcu_height; line++) {
                if (mcu_row * G::mcu_height + line >= CONFIG_T::height) {
                    break;
                }
                write_color_line<CONFIG_T>(lines, line, line, line, false, pixels);
            }
            continue;
        }

        if (mcu_row > 0) {
            // Lower line of chroma row 7 of the previous MCU row, whose
            // neighbour below is chroma row 0 of this one.
            write_color_line<CONFIG_T>(lines, L::saved_luma, L::saved_chroma, 0, true, pixels);
        }
    UpsampledLineLoop:
        for (unsigned line = 0; line + 1 < G::mcu_height; line++) {
            if (mcu_row * G::mcu_height + line >= CONFIG_T::height) {
                break;
            }
            unsigned row = line / 2;
            bool lower = (line & 1) != 0;
            unsigned neighbour;
            if (lower) {
                neighbour = mcu_row * 8 + row < last_chroma_row ? row + 1 : row;
            } else if (row > 0) {
                neighbour = row - 1;
            } else {
                neighbour = mcu_row > 0 ? L::saved_chroma : 0;
            }
            write_color_line<CONFIG_T>(lines, line, row, neighbour, lower, pixels);
        }
    SaveLineLoop:
        for (unsigned x = 0; x < G::luma_stride; x++) {
#pragma HLS PIPELINE II=1
            lines.luma[L::saved_luma][x] = lines.luma[G::mcu_height - 1][x];
        }
        for (unsigned channel = 0; channel < 2; channel++) {
            for (unsigned x = 0; x < G::chroma_stride; x++) {
#pragma HLS PIPELINE II=1
                lines.chroma[channel][L::saved_chroma][x] = lines.chroma[channel][7][x];
            }
        }
    }

    if (CONFIG_T::v_samp == 2 && G::mcus_y * G::mcu_height <= CONFIG_T::height) {
        // The image ends exactly at the last MCU row: its last line has no
        // chroma row below, so the row replicates.
        write_color_line<CONFIG_T>(lines, L::saved_luma, L::saved_chroma, L::saved_chroma, true, pixels);
    }
}

template <class CONFIG_T, unsigned N> struct raster_stage;

template <class CONFIG_T> struct raster_stage<CONFIG_T, 1> {
    static void run(hls::stream<sample_t> &samples, hls::stream<pixel_t<1> > &pixels) {
        raster_gray<CONFIG_T>(samples, pixels);
    }
};

template <class CONFIG_T> struct raster_stage<CONFIG_T, 3> {
    static void run(hls::stream<sample_t> &samples, hls::stream<pixel_t<3> > &pixels) {
        raster_color<CONFIG_T>(samples, pixels);
    }
};

// ---------------------------------------------------------------------------
// Top level.

// Compile-time checks of a configuration struct, shared by both top functions.
template <class CONFIG_T> struct config_check {
    static_assert(CONFIG_T::n_components == 1 || CONFIG_T::n_components == 3,
                  "the decoder supports 1 (greyscale) or 3 components");
    static_assert(CONFIG_T::width >= 1 && CONFIG_T::width <= 65500 && CONFIG_T::height >= 1 &&
                      CONFIG_T::height <= 65500,
                  "image width and height must be 1..65500, libjpeg-turbo's JPEG_MAX_DIMENSION");
    static_assert((CONFIG_T::h_samp == 1 || CONFIG_T::h_samp == 2) && (CONFIG_T::v_samp == 1 || CONFIG_T::v_samp == 2),
                  "luma sampling factors must be 1 or 2");
    static_assert(CONFIG_T::n_components == 3 || (CONFIG_T::h_samp == 1 && CONFIG_T::v_samp == 1),
                  "a greyscale stream codes one block per MCU, so its sampling factors must be given as 1x1");
    static_assert(CONFIG_T::n_components == 3 || !CONFIG_T::ycbcr_to_rgb,
                  "YCbCr to RGB conversion needs 3 components");
    static_assert(CONFIG_T::restart_interval <= 65535, "the restart interval is a 16-bit field");
    static_assert(CONFIG_T::n_huffman_tables >= 1 && CONFIG_T::n_huffman_tables <= 8,
                  "a scan uses at most 4 DC and 4 AC Huffman tables");
    static const bool valid = true;
};

// Decodes one image whose payload length the caller passes.
template <class CONFIG_T>
void decode(hls::stream<ap_uint<8> > &payload, ap_uint<32> length,
            hls::stream<pixel_t<CONFIG_T::n_components> > &pixels) {
    static_assert(config_check<CONFIG_T>::valid, "invalid decoder configuration");
#pragma HLS DATAFLOW
    hls::stream<token_t> tokens("tokens");
    hls::stream<coef_t> coefficients("coefficients");
    hls::stream<sample_t> samples("samples");
#pragma HLS STREAM variable=tokens depth=64
#pragma HLS STREAM variable=coefficients depth=128
#pragma HLS STREAM variable=samples depth=128

    unstuff_payload<CONFIG_T>(payload, length, tokens);
    decode_huffman<CONFIG_T>(tokens, coefficients);
    inverse_dct<CONFIG_T>(coefficients, samples);
    raster_stage<CONFIG_T, CONFIG_T::n_components>::run(samples, pixels);
}

// Decodes one frame: a 16-bit big-endian payload length followed by the
// payload. The length travels in the stream, so every stage of the DATAFLOW
// region is connected by streams alone and consecutive frames follow each
// other on one byte stream. Reads exactly 2 + length bytes.
template <class CONFIG_T>
void decode_frame(hls::stream<ap_uint<8> > &frames, hls::stream<pixel_t<CONFIG_T::n_components> > &pixels) {
    static_assert(config_check<CONFIG_T>::valid, "invalid decoder configuration");
#pragma HLS DATAFLOW
    hls::stream<token_t> tokens("tokens");
    hls::stream<coef_t> coefficients("coefficients");
    hls::stream<sample_t> samples("samples");
#pragma HLS STREAM variable=tokens depth=64
#pragma HLS STREAM variable=coefficients depth=128
#pragma HLS STREAM variable=samples depth=128

    unstuff_frame<CONFIG_T>(frames, tokens);
    decode_huffman<CONFIG_T>(tokens, coefficients);
    inverse_dct<CONFIG_T>(coefficients, samples);
    raster_stage<CONFIG_T, CONFIG_T::n_components>::run(samples, pixels);
}

} // namespace jpeg

#endif
