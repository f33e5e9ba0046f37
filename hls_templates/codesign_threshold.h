// Integer requantization layers for exact lowering of float scales (io_stream).
//
// codesign_threshold: output code = offset + step * count(acc >= thresholds[c][k]),
// the form of FINN's MultiThreshold (step 2 gives a bipolar quantizer's -1 and +1). The thresholds of each channel ascend, so
// a binary search of log2(n_thresholds) + 1 compares finds the count.
//
// codesign_rescale: output = round half to even((acc * multiplier[c] + offset[c]) / 2^shift),
// written as the raw bits of the output fixed type, whose LSB is 2^-out_frac.
//
// NOTE: only C simulation (g++) has run these layers; no Vitis HLS synthesis yet. The threshold
// table of each channel is a ROM read at a data-dependent index, and no ARRAY_PARTITION pragma
// splits it by channel, so the unrolled channel loop may not reach II=1.
#ifndef CODESIGN_THRESHOLD_H_
#define CODESIGN_THRESHOLD_H_

#include "ap_fixed.h"
#include "ap_int.h"
#include "hls_stream.h"
#include "nnet_common.h"
#include "nnet_types.h"

namespace nnet {

template <class data_T, class res_T, typename CONFIG_T>
void codesign_threshold(hls::stream<data_T> &data, hls::stream<res_T> &res) {
ThresholdLoop:
    for (unsigned i = 0; i < CONFIG_T::n_in / data_T::size; i++) {
        #pragma HLS PIPELINE

        data_T in_data = data.read();
        res_T out_data;
        PRAGMA_DATA_PACK(out_data)

    ThresholdPackLoop:
        for (unsigned j = 0; j < data_T::size; j++) {
            #pragma HLS UNROLL
            const unsigned channel = (i * data_T::size + j) % CONFIG_T::n_chan;
            unsigned count = 0;
        ThresholdSearchLoop:
            for (unsigned step = CONFIG_T::search_start; step > 0; step >>= 1) {
                if (count + step <= CONFIG_T::n_thresholds &&
                    CONFIG_T::thresholds[channel][count + step - 1] <= in_data[j]) {
                    count += step;
                }
            }
            out_data[j] = CONFIG_T::offset + CONFIG_T::step * int(count);
        }

        res.write(out_data);
    }
}

template <class data_T, class res_T, typename CONFIG_T>
void codesign_rescale(hls::stream<data_T> &data, hls::stream<res_T> &res) {
    typedef typename CONFIG_T::product_t product_t;
RescaleLoop:
    for (unsigned i = 0; i < CONFIG_T::n_in / data_T::size; i++) {
        #pragma HLS PIPELINE

        data_T in_data = data.read();
        res_T out_data;
        PRAGMA_DATA_PACK(out_data)

    RescalePackLoop:
        for (unsigned j = 0; j < data_T::size; j++) {
            #pragma HLS UNROLL
            const unsigned channel = (i * data_T::size + j) % CONFIG_T::n_chan;
            product_t accumulator = in_data[j];
            product_t product = accumulator * product_t(CONFIG_T::multipliers[channel]) +
                                product_t(CONFIG_T::offsets[channel]);
            if (CONFIG_T::relu && product < 0) {
                product = 0;
            }
            product_t rounded = product;
            if (CONFIG_T::shift > 0) {
                const unsigned half_shift = CONFIG_T::shift > 0 ? CONFIG_T::shift - 1 : 0;
                rounded = product >> CONFIG_T::shift;
                product_t remainder = product - (rounded << CONFIG_T::shift);
                product_t half = product_t(1) << half_shift;
                // Round half to even: up above the midpoint, and at it when the quotient is odd.
                if (remainder > half || (remainder == half && rounded[0] == 1)) {
                    rounded += 1;
                }
            }
            typename res_T::value_type value;
            value.range(CONFIG_T::out_width - 1, 0) = rounded.range(CONFIG_T::out_width - 1, 0);
            out_data[j] = value;
        }

        res.write(out_data);
    }
}

} // namespace nnet

#endif
