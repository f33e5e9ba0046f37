// Per-pixel channel permutation of a channels-last stream (io_stream): out[c] = in[permutation[c]].
//
// A channel shuffle (reshape, transpose, reshape) reorders only the channels inside each pixel, so each
// stream element is read once and written once with its channels reordered. The permutation is a constant,
// so the unrolled copy is wiring.
//
// NOTE: only C simulation (g++) has run this layer; no Vitis HLS synthesis yet.
#ifndef CODESIGN_CHANNEL_PERMUTE_H_
#define CODESIGN_CHANNEL_PERMUTE_H_

#include "hls_stream.h"
#include "nnet_common.h"
#include "nnet_types.h"

namespace nnet {

template <class data_T, class res_T, typename CONFIG_T>
void codesign_channel_permute(hls::stream<data_T> &data, hls::stream<res_T> &res) {
    static_assert(data_T::size == CONFIG_T::n_chan, "a stream element must hold one pixel's channels");
    static_assert(res_T::size == CONFIG_T::n_chan, "a stream element must hold one pixel's channels");
ChannelPermuteLoop:
    for (unsigned i = 0; i < CONFIG_T::n_in / CONFIG_T::n_chan; i++) {
        #pragma HLS PIPELINE

        data_T in_data = data.read();
        res_T out_data;
        PRAGMA_DATA_PACK(out_data)

    ChannelPermutePackLoop:
        for (unsigned c = 0; c < CONFIG_T::n_chan; c++) {
            #pragma HLS UNROLL
            out_data[c] = in_data[CONFIG_T::permutation[c]];
        }

        res.write(out_data);
    }
}

} // namespace nnet

#endif
