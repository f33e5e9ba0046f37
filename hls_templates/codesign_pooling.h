#ifndef CODESIGN_POOLING_H_
#define CODESIGN_POOLING_H_

// Streaming 2-D pooling with any stride, for hls4ml 1.3.0's Vitis backend (io_stream, channels-last).
//
// hls4ml's pooling2d_buffer_cl asserts pool size == stride, although the
// line-buffer step it calls, compute_pool_buffer_2d, tracks the stride with
// the same counters as the convolution line buffer. This is that function
// without the assertion, so stride-1 pooling (Tiny-YOLO's last max pooling)
// streams too. Padding must still be zero: codesign moves it into a
// ZeroPadding2D layer in front.

#include "nnet_pooling_stream.h"

namespace nnet {

template <class data_T, class res_T, typename CONFIG_T>
void codesign_pooling2d_cl(hls::stream<data_T> &data, hls::stream<res_T> &res) {
    assert(CONFIG_T::pad_top == 0);
    assert(CONFIG_T::pad_bottom == 0);
    assert(CONFIG_T::pad_left == 0);
    assert(CONFIG_T::pad_right == 0);
    assert(CONFIG_T::stride_height <= CONFIG_T::pool_height);
    assert(CONFIG_T::stride_width <= CONFIG_T::pool_width);

    static ap_shift_reg<typename data_T::value_type, CONFIG_T::in_width> line_buffer[MAX(CONFIG_T::pool_height - 1, 1)]
                                                                                    [CONFIG_T::n_filt];
    #pragma HLS ARRAY_PARTITION variable = line_buffer complete dim = 2

ReadInputHeight:
    for (unsigned i_ih = 0; i_ih < CONFIG_T::in_height; i_ih++) {
    ReadInputWidth:
        for (unsigned i_iw = 0; i_iw < CONFIG_T::in_width; i_iw++) {
            #pragma HLS LOOP_FLATTEN
            #pragma HLS PIPELINE

            compute_pool_buffer_2d<data_T, res_T, CONFIG_T>(data.read(), line_buffer, res);
        }
    }
}

} // namespace nnet

#endif
