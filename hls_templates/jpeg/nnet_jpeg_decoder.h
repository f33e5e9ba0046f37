// hls4ml layer function of the JPEG front-end: frame bytes in, the
// detector's input pixels out. codesign.jpeg.hls4ml_layer registers this
// file and jpeg_decoder.h with the Vitis backend (register_source), and the
// JpegDecoder layer's function template calls nnet::jpeg_decoder.
//
// data_T is the graph input's packet, nnet::array<ap_uint<8>, 1>: one byte
// of a frame (a 16-bit big-endian payload length, then the payload). The
// layer reads exactly 2 + length packets per image, so frames follow each
// other on the input stream. res_T is a packet of one pixel's channels,
// whose element type takes the decoded 8-bit sample as its bit pattern
// (ap_ufixed<8,0>: value = sample / 256). A greyscale stream feeds its grey
// level to every channel.
//
// One DATAFLOW region of three processes: frame_bytes (packets -> bytes),
// jpeg::decode_frame and pixels_to_packets.
// NOTE: not yet run through Vitis HLS.

#ifndef NNET_JPEG_DECODER_H_
#define NNET_JPEG_DECODER_H_

#include "ap_int.h"
#include "hls_stream.h"
#include "jpeg_decoder.h"

namespace nnet {

namespace jpeg_layer {

// Forwards one frame: the 2 length bytes, then `length` payload bytes.
template <class data_T> void frame_bytes(hls::stream<data_T> &frames, hls::stream<ap_uint<8> > &bytes) {
    static_assert(data_T::size == 1, "the JPEG decoder layer reads one byte per input packet");
    // Two statements, because the order of two reads in one expression is unspecified.
    ap_uint<16> high = frames.read()[0];
    ap_uint<16> low = frames.read()[0];
    bytes.write(high);
    bytes.write(low);
    const ap_uint<16> length = (high << 8) | low;
PayloadLoop:
    for (ap_uint<17> i = 0; i < length; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=1 max=65535
        bytes.write(frames.read()[0]);
    }
}

template <class CONFIG_T, class res_T>
void pixels_to_packets(hls::stream<jpeg::pixel_t<CONFIG_T::n_components> > &pixels, hls::stream<res_T> &output) {
    typedef typename res_T::value_type value_t;
    static_assert(value_t::width == 8 && value_t::iwidth == 0,
                  "the decoder layer's output type must be ap_ufixed<8,0>, whose bit pattern is the sample");
PixelLoop:
    for (unsigned i = 0; i < CONFIG_T::height * CONFIG_T::width; i++) {
#pragma HLS PIPELINE II=1
        jpeg::pixel_t<CONFIG_T::n_components> pixel = pixels.read();
        res_T packet;
        for (unsigned c = 0; c < res_T::size; c++) {
#pragma HLS UNROLL
            packet[c].range(7, 0) = pixel.c[CONFIG_T::n_components == 1 ? 0 : c];
        }
        output.write(packet);
    }
}

} // namespace jpeg_layer

template <class data_T, class res_T, typename CONFIG_T>
void jpeg_decoder(hls::stream<data_T> &frames, hls::stream<res_T> &output) {
    static_assert(CONFIG_T::n_components == 1 || res_T::size == CONFIG_T::n_components,
                  "a colour stream needs one output channel per component");
#pragma HLS DATAFLOW
    hls::stream<ap_uint<8> > bytes("jpeg_frame_bytes");
    hls::stream<jpeg::pixel_t<CONFIG_T::n_components> > pixels("jpeg_pixels");
    // One image line: enough to decouple the line bursts of the decoder's
    // raster stage from the next layer's pixel rate.
#pragma HLS STREAM variable=bytes depth=2
#pragma HLS STREAM variable=pixels depth=CONFIG_T::width

    jpeg_layer::frame_bytes<data_T>(frames, bytes);
    jpeg::decode_frame<CONFIG_T>(bytes, pixels);
    jpeg_layer::pixels_to_packets<CONFIG_T, res_T>(pixels, output);
}

} // namespace nnet

#endif
