// Prints the results of ap_fixed / ap_int operations over exhaustive small
// inputs. tests/test_fast_ap_types.py builds it once against AMD's headers
// and once against codesign's fast model and requires identical output.
#include <cstdio>
#include <cstdint>

#include "ap_fixed.h"
#include "ap_int.h"

template <typename T> static long long code(const T& x) { return (long long)x.range(T::width - 1, 0).to_uint64(); }

template <typename T> static T from_code(long long c) {
    T x;
    x.range(T::width - 1, 0) = (unsigned long long)c;
    return x;
}

template <typename T, typename F> static void each_code(F f) {
    for (long long c = 0; c < (1LL << T::width); ++c) f(from_code<T>(c));
}

template <typename S, typename D> static void convert(const char* name) {
    unsigned long long h = 1469598103934665603ULL;
    each_code<S>([&](const S& x) {
        D y = x;
        h = (h ^ (unsigned long long)code(y)) * 1099511628211ULL;
    });
    std::printf("convert %s %016llx\n", name, h);
}

template <typename D> static void from_double(const char* name) {
    unsigned long long h = 1469598103934665603ULL;
    for (int i = -2000; i <= 2000; ++i) {
        double d = i / 64.0;  // includes every tie of the targets below
        D y = d;
        h = (h ^ (unsigned long long)code(y)) * 1099511628211ULL;
        float f = (float)(i / 96.0);
        D z = f;
        h = (h ^ (unsigned long long)code(z)) * 1099511628211ULL;
    }
    std::printf("double %s %016llx\n", name, h);
}

template <typename A, typename B> static void arith(const char* name) {
    unsigned long long h = 1469598103934665603ULL;
    auto mix = [&](long long v) { h = (h ^ (unsigned long long)v) * 1099511628211ULL; };
    each_code<A>([&](const A& a) {
        each_code<B>([&](const B& b) {
            auto s = a + b;
            auto d = a - b;
            auto p = a * b;
            mix(code(s));
            mix(code(d));
            mix(code(p));
            mix(s.width * 1000 + s.iwidth);
            mix(d.width * 1000 + d.iwidth);
            mix(p.width * 1000 + p.iwidth);
            if (b != 0) {
                auto q = a / b;
                mix(code(q));
                mix(q.width * 1000 + q.iwidth);
            }
            mix((a < b) + 2 * (a <= b) + 4 * (a == b) + 8 * (a != b) + 16 * (a > b) + 32 * (a >= b));
            A acc = a;
            acc += b;
            mix(code(acc));
            acc = a;
            acc -= b;
            mix(code(acc));
            acc = a;
            acc *= b;
            mix(code(acc));
        });
        auto n = -a;
        mix(code(n));
        // AMD's to_int() reads an uninitialized value when the integer width is negative.
        if (A::iwidth >= 0) mix(a.to_int());
        mix((long long)(a.to_double() * 4096.0));
        mix(code(a << 1));
        mix(code(a >> 2));
        mix((a * 3).width);
        mix(code(a * 3));
        mix(code(a + 1));
        mix((int)(bool)a);
    });
    std::printf("arith %s %016llx\n", name, h);
}

template <typename A, typename B> static void int_arith(const char* name) {
    unsigned long long h = 1469598103934665603ULL;
    auto mix = [&](long long v) { h = (h ^ (unsigned long long)v) * 1099511628211ULL; };
    each_code<A>([&](const A& a) {
        each_code<B>([&](const B& b) {
            mix(code(a + b));
            mix(code(a - b));
            mix(code(a * b));
            mix((a + b).width);
            mix((a * b).width);
            mix(code(a & b));
            mix(code(a | b));
            mix(code(a ^ b));
            if (b != 0) {
                mix(code(a / b));
                mix(code(a % b));
            }
            mix((a < b) + 2 * (a == b) + 4 * (a > b));
            A c = a;
            c += b;
            mix(code(c));
        });
        mix(a.to_int());
        mix(code(a << 2));
        mix(code(a >> 1));
        mix(code(~a));
        mix(code(-a));
        mix((long long)a);
        mix(code(a + 5));
    });
    std::printf("int %s %016llx\n", name, h);
}

// Wide types: random codes, conversions and exact products up to 128 bits.
static unsigned long long lcg_state = 88172645463325252ULL;
static unsigned long long next_random() {
    lcg_state ^= lcg_state << 13;
    lcg_state ^= lcg_state >> 7;
    lcg_state ^= lcg_state << 17;
    return lcg_state;
}

template <typename T> static long long code_hi(const T& x) {
    return T::width > 64 ? (long long)x.range(T::width - 1, 64).to_uint64() : 0;
}

template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O, int N>
constexpr bool signed_of(const ap_fixed_base<W, I, S, Q, O, N>*) { return S; }

template <typename A, typename B, typename D> static void wide(const char* name) {
    unsigned long long h = 1469598103934665603ULL;
    auto mix = [&](long long v) { h = (h ^ (unsigned long long)v) * 1099511628211ULL; };
    for (int i = 0; i < 20000; ++i) {
        unsigned long long ra = next_random(), rb = next_random();
        int sa = (int)(next_random() % A::width), sb = (int)(next_random() % B::width);
        A a = from_code<A>((long long)(A::width >= 64 ? ra : (ra >> sa) & ((1ULL << A::width) - 1)));
        B b = from_code<B>((long long)(B::width >= 64 ? rb : (rb >> sb) & ((1ULL << B::width) - 1)));
        auto p = a * b;
        auto s = a + b;
        D d = p;
        D e = s;
        D f = a;
        mix(code(p));
        mix(code_hi(p));
        mix(code(s));
        mix(code_hi(s));
        mix(code(d));
        mix(code(e));
        mix(code(f));
        // AMD compares mixed-sign values wider than 64 bits as unsigned; the fast model refuses them.
        if constexpr (signed_of((A*)nullptr) == signed_of((B*)nullptr)) mix((a < b) + 2 * (a == b));
        D g = a.to_double();
        mix(code(g));
    }
    std::printf("wide %s %016llx\n", name, h);
}

#define CONVERT_MODES(S, W, I, SIGNED_T)                                  \
    convert<S, SIGNED_T<W, I, AP_TRN, AP_WRAP>>(#S " " #SIGNED_T " TRN WRAP");         \
    convert<S, SIGNED_T<W, I, AP_TRN_ZERO, AP_WRAP>>(#S " " #SIGNED_T " TRN_ZERO WRAP"); \
    convert<S, SIGNED_T<W, I, AP_RND, AP_SAT>>(#S " " #SIGNED_T " RND SAT");           \
    convert<S, SIGNED_T<W, I, AP_RND_ZERO, AP_SAT>>(#S " " #SIGNED_T " RND_ZERO SAT"); \
    convert<S, SIGNED_T<W, I, AP_RND_MIN_INF, AP_SAT>>(#S " " #SIGNED_T " RND_MIN_INF SAT"); \
    convert<S, SIGNED_T<W, I, AP_RND_INF, AP_SAT_ZERO>>(#S " " #SIGNED_T " RND_INF SAT_ZERO"); \
    convert<S, SIGNED_T<W, I, AP_RND_CONV, AP_SAT>>(#S " " #SIGNED_T " RND_CONV SAT"); \
    convert<S, SIGNED_T<W, I, AP_RND_CONV, AP_SAT_SYM>>(#S " " #SIGNED_T " RND_CONV SAT_SYM"); \
    convert<S, SIGNED_T<W, I, AP_RND_CONV, AP_WRAP>>(#S " " #SIGNED_T " RND_CONV WRAP"); \
    convert<S, SIGNED_T<W, I, AP_TRN, AP_SAT>>(#S " " #SIGNED_T " TRN SAT");            \
    convert<S, SIGNED_T<W, I, AP_TRN_ZERO, AP_SAT_SYM>>(#S " " #SIGNED_T " TRN_ZERO SAT_SYM"); \
    convert<S, SIGNED_T<W, I, AP_RND_INF, AP_SAT_SYM>>(#S " " #SIGNED_T " RND_INF SAT_SYM"); \
    convert<S, SIGNED_T<W, I, AP_RND_ZERO, AP_WRAP>>(#S " " #SIGNED_T " RND_ZERO WRAP"); \
    convert<S, SIGNED_T<W, I, AP_RND, AP_SAT_ZERO>>(#S " " #SIGNED_T " RND SAT_ZERO");

#define DOUBLE_MODES(W, I, SIGNED_T)                                             \
    from_double<SIGNED_T<W, I, AP_TRN, AP_WRAP>>(#W " " #I " " #SIGNED_T " TRN WRAP");           \
    from_double<SIGNED_T<W, I, AP_RND, AP_SAT>>(#W " " #I " " #SIGNED_T " RND SAT");             \
    from_double<SIGNED_T<W, I, AP_RND_ZERO, AP_SAT>>(#W " " #I " " #SIGNED_T " RND_ZERO SAT");   \
    from_double<SIGNED_T<W, I, AP_RND_MIN_INF, AP_WRAP>>(#W " " #I " " #SIGNED_T " RND_MIN_INF WRAP"); \
    from_double<SIGNED_T<W, I, AP_RND_INF, AP_SAT_SYM>>(#W " " #I " " #SIGNED_T " RND_INF SAT_SYM"); \
    from_double<SIGNED_T<W, I, AP_RND_CONV, AP_SAT>>(#W " " #I " " #SIGNED_T " RND_CONV SAT");   \
    from_double<SIGNED_T<W, I, AP_RND_CONV, AP_WRAP>>(#W " " #I " " #SIGNED_T " RND_CONV WRAP"); \
    from_double<SIGNED_T<W, I, AP_TRN_ZERO, AP_SAT_ZERO>>(#W " " #I " " #SIGNED_T " TRN_ZERO SAT_ZERO");

typedef ap_fixed<8, 4> s8_4;
typedef ap_ufixed<7, 3> u7_3;
typedef ap_fixed<10, 2> s10_2;
typedef ap_fixed<6, 8> s6_8;
typedef ap_fixed<6, -1> s6_m1;
typedef ap_ufixed<9, 9> u9_9;

int main() {
    CONVERT_MODES(s8_4, 4, 2, ap_fixed)
    CONVERT_MODES(s8_4, 5, 1, ap_ufixed)
    CONVERT_MODES(s8_4, 6, 6, ap_fixed)
    CONVERT_MODES(s8_4, 4, 0, ap_fixed)
    CONVERT_MODES(u7_3, 4, 2, ap_fixed)
    CONVERT_MODES(u7_3, 3, 1, ap_ufixed)
    CONVERT_MODES(s10_2, 5, 2, ap_fixed)
    CONVERT_MODES(s10_2, 12, 5, ap_fixed)
    CONVERT_MODES(s6_8, 5, 4, ap_fixed)
    CONVERT_MODES(s6_m1, 4, 0, ap_fixed)
    CONVERT_MODES(s6_m1, 5, -2, ap_ufixed)
    CONVERT_MODES(u9_9, 6, 7, ap_fixed)
    CONVERT_MODES(u9_9, 1, 1, ap_ufixed)
    CONVERT_MODES(s10_2, 1, 1, ap_fixed)

    DOUBLE_MODES(6, 3, ap_fixed)
    DOUBLE_MODES(5, 2, ap_ufixed)
    DOUBLE_MODES(8, 8, ap_fixed)
    DOUBLE_MODES(4, 0, ap_fixed)

    arith<ap_fixed<5, 2>, ap_fixed<4, 3>>("s5_2 s4_3");
    arith<ap_ufixed<5, 1>, ap_fixed<6, 4>>("u5_1 s6_4");
    arith<ap_fixed<6, 6>, ap_ufixed<4, 0>>("s6_6 u4_0");
    arith<ap_ufixed<4, 4>, ap_ufixed<5, 2>>("u4_4 u5_2");
    arith<ap_fixed<5, 2, AP_RND_CONV, AP_SAT>, ap_fixed<4, 1, AP_RND, AP_SAT_SYM>>("s5_2 rnd sat");
    arith<ap_fixed<6, -2>, ap_fixed<5, 7>>("s6_m2 s5_7");

    wide<ap_fixed<18, 10>, ap_fixed<16, 2>, ap_fixed<16, 8, AP_RND_CONV, AP_SAT>>("s18 s16 -> s16 rnd_conv sat");
    wide<ap_fixed<18, 10>, ap_ufixed<6, 1>, ap_ufixed<6, 1, AP_RND_CONV, AP_SAT>>("s18 u6 -> u6 rnd_conv sat");
    wide<ap_fixed<33, 5>, ap_fixed<33, 20>, ap_fixed<40, 12, AP_RND, AP_SAT_SYM>>("s33 s33 -> s40 rnd sat_sym");
    wide<ap_fixed<48, 30>, ap_ufixed<40, 8>, ap_fixed<70, 40, AP_TRN_ZERO, AP_SAT>>("s48 u40 -> s70");
    wide<ap_ufixed<60, 32>, ap_fixed<64, 10>, ap_fixed<24, 12, AP_RND_CONV, AP_WRAP>>("u60 s64 -> s24 wrap");
    wide<ap_fixed<62, 0>, ap_fixed<31, 31>, ap_ufixed<63, 40, AP_RND_INF, AP_SAT_ZERO>>("s62 s31 -> u63");

    int_arith<ap_int<5>, ap_int<4>>("i5 i4");
    int_arith<ap_uint<5>, ap_int<6>>("u5 i6");
    int_arith<ap_uint<4>, ap_uint<6>>("u4 u6");
    return 0;
}
