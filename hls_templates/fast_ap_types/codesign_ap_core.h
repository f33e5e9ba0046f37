// codesign fast ap types: a bit-accurate C-simulation model of AMD's ap_int and
// ap_fixed for widths up to 126 bits.
//
// The AMD headers model every value with the arbitrary-precision ap_private
// class and apply rounding and overflow bit by bit, which costs tens of
// nanoseconds per multiply-accumulate. This model keeps each value as its
// integer code in the smallest native integer (int32_t, int64_t or __int128)
// and applies rounding and overflow with integer arithmetic, so that
// hls4ml's kernels compile to plain integer loops.
//
// Semantics follow the AMD headers (ap_fixed_base.h, ap_int_base.h):
// - arithmetic between fixed-point values is exact, with the result types of
//   AMD's RType (full precision);
// - conversion first quantizes the dropped fractional bits (seven ap_q_mode
//   rules), then applies the overflow mode (AP_SAT, AP_SAT_ZERO, AP_SAT_SYM,
//   AP_WRAP) to the rounded code;
// - shifts act on the raw bits and wrap;
// - to_int() and friends round toward zero like C.
// AP_WRAP_SM and saturation bits N > 0 are not modelled: using them is a
// compile error, and codesign then builds with the AMD headers instead.
// tests/test_fast_ap_types.py compares this model with the AMD headers.
#ifndef CODESIGN_AP_CORE_H
#define CODESIGN_AP_CORE_H

// Stop the AMD headers from being read after these: hls_math.h and others
// include "ap_fixed.h" from their own folder.
#define __AP_COMMON_H__
#define __AP_DECL_H__
#define __AP_FIXED_H__
#define __AP_FIXED_BASE_H__
#define __AP_FIXED_REF_H__
#define __AP_FIXED_SPECIAL_H__
#define __AP_INT_H__
#define __AP_INT_BASE_H__
#define __AP_INT_REF_H__
#define __AP_INT_SPECIAL_H__
#define CODESIGN_FAST_AP_TYPES 1

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <type_traits>

#ifndef AP_MAX
#define AP_MAX(a, b) ((a) > (b) ? (a) : (b))
#endif
#ifndef AP_MIN
#define AP_MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef AP_ABS
#define AP_ABS(a) ((a) >= 0 ? (a) : -(a))
#endif
#ifndef INLINE
#define INLINE inline __attribute__((always_inline))
#endif
#define AP_INT_MAX_W 126

enum ap_q_mode { AP_RND, AP_RND_ZERO, AP_RND_MIN_INF, AP_RND_INF, AP_RND_CONV, AP_TRN, AP_TRN_ZERO };
enum ap_o_mode { AP_SAT, AP_SAT_ZERO, AP_SAT_SYM, AP_WRAP, AP_WRAP_SM };

#define SC_RND AP_RND
#define SC_RND_ZERO AP_RND_ZERO
#define SC_RND_MIN_INF AP_RND_MIN_INF
#define SC_RND_INF AP_RND_INF
#define SC_RND_CONV AP_RND_CONV
#define SC_TRN AP_TRN
#define SC_TRN_ZERO AP_TRN_ZERO
#define SC_SAT AP_SAT
#define SC_SAT_ZERO AP_SAT_ZERO
#define SC_SAT_SYM AP_SAT_SYM
#define SC_WRAP AP_WRAP
#define SC_WRAP_SM AP_WRAP_SM

typedef long long ap_slong;
typedef unsigned long long ap_ulong;

template <int _AP_W, bool _AP_S> struct ap_int_base;
template <int _AP_W> struct ap_int;
template <int _AP_W> struct ap_uint;
template <int _AP_W, int _AP_I, bool _AP_S = true, ap_q_mode _AP_Q = AP_TRN, ap_o_mode _AP_O = AP_WRAP,
          int _AP_N = 0>
struct ap_fixed_base;
template <int _AP_W, int _AP_I, ap_q_mode _AP_Q = AP_TRN, ap_o_mode _AP_O = AP_WRAP, int _AP_N = 0>
struct ap_fixed;
template <int _AP_W, int _AP_I, ap_q_mode _AP_Q = AP_TRN, ap_o_mode _AP_O = AP_WRAP, int _AP_N = 0>
struct ap_ufixed;

namespace cdap {

typedef __int128 i128;
typedef unsigned __int128 u128;

// Storage for a code of W bits: one more bit for unsigned codes, so that every
// code is a non-negative value of a signed native integer.
template <int W, bool S> struct storage {
    static constexpr int bits = W + (S ? 0 : 1);
    static_assert(W >= 1, "codesign fast ap types: width must be at least 1");
    static_assert(bits <= 127, "codesign fast ap types: widths above 126 bits are not modelled");
    typedef typename std::conditional<(bits <= 32), int32_t,
                                      typename std::conditional<(bits <= 64), int64_t, i128>::type>::type type;
};

// A native integer able to hold ``bits`` signed bits of intermediate results.
template <int bits> struct work {
    static_assert(bits <= 127, "codesign fast ap types: intermediate result wider than 127 bits");
    typedef typename std::conditional<(bits <= 32), int32_t,
                                      typename std::conditional<(bits <= 64), int64_t, i128>::type>::type type;
};

template <typename T> struct unsigned_of { typedef typename std::make_unsigned<T>::type type; };
template <> struct unsigned_of<i128> { typedef u128 type; };

// Reduce a code modulo 2**W and read it as signed or unsigned.
template <int W, bool S, typename T> INLINE T wrap(T v) {
    typedef typename unsigned_of<T>::type U;
    constexpr int tbits = sizeof(T) * 8;
    if constexpr (W >= tbits) {
        return v;
    } else {
        U m = static_cast<U>(v) & ((static_cast<U>(1) << W) - 1);
        if constexpr (S) {
            if ((m >> (W - 1)) & 1) return static_cast<T>(m) - (static_cast<T>(1) << (W - 1)) * 2;
        }
        return static_cast<T>(m);
    }
}

constexpr int cmax(int a, int b) { return a > b ? a : b; }

template <int W, bool S, typename T> constexpr T min_code() {
    static_assert(W + (S ? 0 : 1) <= static_cast<int>(sizeof(T) * 8), "code does not fit the work type");
    return S ? static_cast<T>(-(static_cast<i128>(1) << (W - 1))) : static_cast<T>(0);
}
template <int W, bool S, typename T> constexpr T max_code() {
    static_assert(W + (S ? 0 : 1) <= static_cast<int>(sizeof(T) * 8), "code does not fit the work type");
    return S ? static_cast<T>((static_cast<i128>(1) << (W - 1)) - 1) : static_cast<T>((static_cast<i128>(1) << (W - 1)) * 2 - 1);
}

// Drop k fractional bits from v with a quantization mode (AMD quantization_adjust).
template <ap_q_mode Q, int k, typename T> INLINE T quantize(T v) {
    static_assert(k > 0 && k < static_cast<int>(sizeof(T) * 8) - 1, "quantization shift out of range");
    T f = v >> k;
    if constexpr (Q == AP_TRN) {
        return f;
    } else {
        T rem = v - (f << k);
        constexpr T half = static_cast<T>(1) << (k - 1);
        bool neg = v < 0;
        bool qb = rem >= half;
        bool r = (rem & (half - 1)) != 0;
        bool add;
        if constexpr (Q == AP_RND) add = qb;
        else if constexpr (Q == AP_RND_ZERO) add = qb && (neg || r);
        else if constexpr (Q == AP_RND_MIN_INF) add = qb && r;
        else if constexpr (Q == AP_RND_INF) add = qb && (!neg || r);
        else if constexpr (Q == AP_RND_CONV) add = qb && ((f & 1) || r);
        else add = neg && (qb || r);  // AP_TRN_ZERO
        return f + static_cast<T>(add);
    }
}

// Apply an overflow mode to a code that may lie outside W bits.
template <int W, bool S, ap_o_mode O, int N, typename T> INLINE T overflow(T v) {
    static_assert(O != AP_WRAP_SM, "codesign fast ap types: AP_WRAP_SM is not modelled");
    static_assert(N == 0, "codesign fast ap types: saturation bits N > 0 are not modelled");
    constexpr T lo = min_code<W, S, T>();
    constexpr T hi = max_code<W, S, T>();
    if constexpr (O == AP_WRAP) {
        return wrap<W, S>(v);
    } else if constexpr (O == AP_SAT_ZERO) {
        return (v < lo || v > hi) ? static_cast<T>(0) : v;
    } else if constexpr (O == AP_SAT_SYM && S && W > 1) {
        return v > hi ? hi : (v < -hi ? -hi : v);
    } else {
        return v > hi ? hi : (v < lo ? lo : v);
    }
}

// Convert the code r (Ws bits, Fs fractional bits) to Wd bits with Fd
// fractional bits, quantization Q and overflow O.
template <int Wd, int Fd, bool Sd, ap_q_mode Q, ap_o_mode O, int N, int Ws, int Fs, typename R>
INLINE typename storage<Wd, Sd>::type convert(R r) {
    typedef typename storage<Wd, Sd>::type D;
    constexpr int shift = Fd - Fs;
    constexpr int src_bits = Ws + 1;
    if constexpr (shift >= 0) {
        constexpr int need = cmax(src_bits + shift, storage<Wd, Sd>::bits) + 1;
        if constexpr (need > 127) {
            // Every non-zero code overflows; zero stays zero.
            typedef i128 T;
            if (r == 0) return 0;
            T big = r > 0 ? max_code<Wd, Sd, T>() + 1 : min_code<Wd, Sd, T>() - 1;
            if constexpr (O == AP_WRAP) return 0;
            return static_cast<D>(overflow<Wd, Sd, O, N>(big));
        } else {
            typedef typename work<need>::type T;
            T v = static_cast<T>(r) << shift;
            return static_cast<D>(overflow<Wd, Sd, O, N>(v));
        }
    } else {
        constexpr int k = -shift;
        constexpr int need = cmax(src_bits, storage<Wd, Sd>::bits) + 2;
        if constexpr (k >= 126) {
            // Far below the LSB: the code is 0 or -1 before rounding.
            typedef i128 T;
            T f = r < 0 ? -1 : 0;
            T q = f;
            if constexpr (Q == AP_TRN_ZERO) q = 0;
            else if constexpr (Q != AP_TRN) q = 0;  // |r| < half, so every rounding mode gives 0
            return static_cast<D>(overflow<Wd, Sd, O, N>(q));
        } else {
            typedef typename work<cmax(need, k + 2)>::type T;
            T v = quantize<Q, k>(static_cast<T>(r));
            return static_cast<D>(overflow<Wd, Sd, O, N>(v));
        }
    }
}

// Convert a double to a code with Fd fractional bits (AMD ap_fixed_base(double)).
template <int Wd, int Fd, bool Sd, ap_q_mode Q, ap_o_mode O, int N>
inline typename storage<Wd, Sd>::type from_double(double d) {
    typedef typename storage<Wd, Sd>::type D;
    if (std::isnan(d) || std::isinf(d) || d == 0.0) return 0;
    double scaled = std::ldexp(d, Fd);
    double f = std::floor(scaled);
    double rem = scaled - f;  // exact: in [0, 1)
    bool neg = d < 0;
    bool qb = rem >= 0.5;
    bool r = rem != 0.0 && rem != 0.5;
    bool fodd = std::fmod(f, 2.0) != 0.0;

    bool add;
    if constexpr (Q == AP_TRN) add = false;
    else if constexpr (Q == AP_RND) add = qb;
    else if constexpr (Q == AP_RND_ZERO) add = qb && (neg || r);
    else if constexpr (Q == AP_RND_MIN_INF) add = qb && r;
    else if constexpr (Q == AP_RND_INF) add = qb && (!neg || r);
    else if constexpr (Q == AP_RND_CONV) add = qb && (fodd || r);
    else add = neg && (qb || r);  // AP_TRN_ZERO
    if (add) f += 1.0;

    constexpr int dbits = storage<Wd, Sd>::bits;
    typedef i128 T;
    constexpr double limit = 1.6e38;  // below 2**127
    if (std::fabs(f) >= limit || std::fabs(f) >= std::ldexp(1.0, dbits + 1)) {
        if constexpr (O == AP_WRAP) {
            double m = std::fmod(f, std::ldexp(1.0, Wd));  // exact
            if (m < 0) m += std::ldexp(1.0, Wd);
            return static_cast<D>(wrap<Wd, Sd>(static_cast<T>(m)));
        } else {
            T big = f > 0 ? max_code<Wd, Sd, T>() + 1 : min_code<Wd, Sd, T>() - 1;
            return static_cast<D>(overflow<Wd, Sd, O, N>(big));
        }
    }
    return static_cast<D>(overflow<Wd, Sd, O, N>(static_cast<T>(f)));
}

template <typename T> inline double to_double(T code, int frac) {
    return std::ldexp(static_cast<double>(code), -frac);
}

// Width and signedness of C integer types as AMD's headers see them.
template <typename T> struct int_info {
    static constexpr bool ok = std::is_integral<T>::value;
    static constexpr int width = std::is_same<T, bool>::value ? 1 : static_cast<int>(sizeof(T) * 8);
    static constexpr bool sign = std::is_same<T, bool>::value ? false : std::is_signed<T>::value;
};

template <int W, bool S> struct c_type {
    typedef typename std::conditional<
        (W <= 8), typename std::conditional<S, signed char, unsigned char>::type,
        typename std::conditional<
            (W <= 16), typename std::conditional<S, short, unsigned short>::type,
            typename std::conditional<(W <= 32), typename std::conditional<S, int, unsigned>::type,
                                      typename std::conditional<S, long long, unsigned long long>::type>::type>::type>::type
        type;
};

inline std::string to_decimal(i128 v) {
    if (v == 0) return "0";
    bool neg = v < 0;
    u128 m = neg ? static_cast<u128>(-(v + 1)) + 1 : static_cast<u128>(v);
    std::string s;
    while (m) {
        s.insert(s.begin(), static_cast<char>('0' + static_cast<int>(m % 10)));
        m /= 10;
    }
    return neg ? "-" + s : s;
}

// Parse a number the way AMD's string constructor accepts it (0b, 0o, 0x, or decimal).
inline double parse(const char* s, int radix = 0) {
    std::string text(s);
    size_t start = 0;
    bool neg = false;
    if (!text.empty() && (text[0] == '-' || text[0] == '+')) {
        neg = text[0] == '-';
        start = 1;
    }
    std::string body = text.substr(start);
    if (radix == 0 && body.size() > 2 && body[0] == '0') {
        char p = body[1];
        if (p == 'b' || p == 'B') radix = 2;
        else if (p == 'o' || p == 'O') radix = 8;
        else if (p == 'x' || p == 'X') radix = 16;
        else if (p == 'd' || p == 'D') radix = 10;
        if (radix != 0) body = body.substr(2);
    }
    double value;
    if (radix == 0 || radix == 10) {
        value = std::strtod(body.c_str(), nullptr);
    } else {
        value = 0.0;
        double scale = 1.0;
        bool frac = false;
        for (char c : body) {
            if (c == '.') {
                frac = true;
                continue;
            }
            int digit = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                                         : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
            if (digit < 0 || digit >= radix) break;
            if (frac) {
                scale /= radix;
                value += digit * scale;
            } else {
                value = value * radix + digit;
            }
        }
    }
    return neg ? -value : value;
}

}  // namespace cdap

#endif
