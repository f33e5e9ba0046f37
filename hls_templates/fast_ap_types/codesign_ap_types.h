// ap_int_base, ap_int, ap_uint, ap_fixed_base, ap_fixed and ap_ufixed of the
// codesign fast ap types (see codesign_ap_core.h for the semantics).
#ifndef CODESIGN_AP_TYPES_H
#define CODESIGN_AP_TYPES_H

#include "codesign_ap_core.h"

namespace cdap {

template <typename T> struct is_c_int {
    static constexpr bool value = std::is_integral<T>::value;
};
template <typename T> using enable_c_int = typename std::enable_if<is_c_int<T>::value, int>::type;

// A C integer as a native signed integer wide enough for every value.
template <typename T> INLINE auto widen(T v) {
    if constexpr (sizeof(T) == 8 && !std::is_signed<T>::value) return static_cast<i128>(v);
    else return static_cast<int64_t>(v);
}

}  // namespace cdap

// Read-only and writable views of a bit range (hi..lo) of a code.
template <typename Owner> struct ap_range_ref {
    Owner* owner;
    int hi, lo;
    INLINE ap_range_ref(Owner* o, int h, int l) : owner(o), hi(h), lo(l) {}
    INLINE cdap::u128 bits() const {
        cdap::u128 all = static_cast<cdap::u128>(static_cast<cdap::i128>(owner->V));
        int n = hi - lo + 1;
        cdap::u128 mask = n >= 128 ? ~static_cast<cdap::u128>(0) : ((static_cast<cdap::u128>(1) << n) - 1);
        return (all >> lo) & mask;
    }
    INLINE ap_ulong to_uint64() const { return static_cast<ap_ulong>(bits()); }
    INLINE ap_slong to_int64() const { return static_cast<ap_slong>(bits()); }
    INLINE unsigned to_uint() const { return static_cast<unsigned>(bits()); }
    INLINE int to_int() const { return static_cast<int>(bits()); }
    INLINE int length() const { return hi - lo + 1; }
    INLINE operator ap_ulong() const { return to_uint64(); }
    template <typename T, cdap::enable_c_int<T> = 0> INLINE ap_range_ref& operator=(T value) {
        set(static_cast<cdap::u128>(static_cast<cdap::i128>(cdap::widen(value))));
        return *this;
    }
    template <int W2, bool S2> INLINE ap_range_ref& operator=(const ap_int_base<W2, S2>& value) {
        set(static_cast<cdap::u128>(static_cast<cdap::i128>(value.V)));
        return *this;
    }
    INLINE ap_range_ref& operator=(const ap_range_ref& other) {
        set(other.bits());
        return *this;
    }
    template <typename O2> INLINE ap_range_ref& operator=(const ap_range_ref<O2>& other) {
        set(other.bits());
        return *this;
    }
    INLINE void set(cdap::u128 value) {
        int n = hi - lo + 1;
        cdap::u128 mask = n >= 128 ? ~static_cast<cdap::u128>(0) : ((static_cast<cdap::u128>(1) << n) - 1);
        cdap::u128 all = static_cast<cdap::u128>(static_cast<cdap::i128>(owner->V));
        all = (all & ~(mask << lo)) | ((value & mask) << lo);
        owner->V = Owner::canonical(static_cast<cdap::i128>(all));
    }
};

template <typename Owner> struct ap_bit_ref {
    Owner* owner;
    int index;
    INLINE ap_bit_ref(Owner* o, int i) : owner(o), index(i) {}
    INLINE bool get() const { return (static_cast<cdap::u128>(static_cast<cdap::i128>(owner->V)) >> index) & 1; }
    INLINE operator bool() const { return get(); }
    INLINE bool to_bool() const { return get(); }
    INLINE ap_bit_ref& operator=(bool value) {
        cdap::u128 all = static_cast<cdap::u128>(static_cast<cdap::i128>(owner->V));
        cdap::u128 bit = static_cast<cdap::u128>(1) << index;
        all = value ? (all | bit) : (all & ~bit);
        owner->V = Owner::canonical(static_cast<cdap::i128>(all));
        return *this;
    }
    INLINE ap_bit_ref& operator=(const ap_bit_ref& other) { return *this = other.get(); }
    INLINE bool operator~() const { return !get(); }
};

// ---------------------------------------------------------------------------
// Integers.

template <int _AP_W, bool _AP_S> struct ap_int_base {
    typedef typename cdap::storage<_AP_W, _AP_S>::type raw_type;
    typedef typename cdap::c_type<_AP_W, _AP_S>::type RetType;
    static const int width = _AP_W;
    static const bool sign_flag = _AP_S;
    raw_type V;

    template <int _AP_W2, bool _AP_S2> struct RType {
        enum {
            mult_w = _AP_W + _AP_W2,
            mult_s = _AP_S || _AP_S2,
            plus_w = AP_MAX(_AP_W + (_AP_S2 && !_AP_S), _AP_W2 + (_AP_S && !_AP_S2)) + 1,
            plus_s = _AP_S || _AP_S2,
            minus_w = AP_MAX(_AP_W + (_AP_S2 && !_AP_S), _AP_W2 + (_AP_S && !_AP_S2)) + 1,
            minus_s = true,
            div_w = _AP_W + _AP_S2,
            div_s = _AP_S || _AP_S2,
            mod_w = AP_MIN(_AP_W, _AP_W2 + (!_AP_S2 && _AP_S)),
            mod_s = _AP_S,
            logic_w = AP_MAX(_AP_W + (_AP_S2 && !_AP_S), _AP_W2 + (_AP_S && !_AP_S2)),
            logic_s = _AP_S || _AP_S2
        };
        typedef ap_int_base<mult_w, mult_s> mult_base;
        typedef ap_int_base<plus_w, plus_s> plus_base;
        typedef ap_int_base<minus_w, minus_s> minus_base;
        typedef ap_int_base<logic_w, logic_s> logic_base;
        typedef ap_int_base<div_w, div_s> div_base;
        typedef ap_int_base<mod_w, mod_s> mod_base;
        typedef ap_int_base<_AP_W, _AP_S> arg1_base;
        typedef typename std::conditional<mult_s, ap_int<mult_w>, ap_uint<mult_w>>::type mult;
        typedef typename std::conditional<plus_s, ap_int<plus_w>, ap_uint<plus_w>>::type plus;
        typedef ap_int<minus_w> minus;
        typedef typename std::conditional<logic_s, ap_int<logic_w>, ap_uint<logic_w>>::type logic;
        typedef typename std::conditional<div_s, ap_int<div_w>, ap_uint<div_w>>::type div;
        typedef typename std::conditional<mod_s, ap_int<mod_w>, ap_uint<mod_w>>::type mod;
        typedef typename std::conditional<_AP_S, ap_int<_AP_W>, ap_uint<_AP_W>>::type arg1;
    };

    template <typename T> static INLINE raw_type canonical(T value) {
        return static_cast<raw_type>(cdap::wrap<_AP_W, _AP_S>(static_cast<cdap::i128>(value)));
    }
    template <typename T> static INLINE ap_int_base from_raw(T value) {
        ap_int_base r;
        r.V = static_cast<raw_type>(cdap::wrap<_AP_W, _AP_S>(value));
        return r;
    }

    INLINE ap_int_base() : V(0) {}
    INLINE ap_int_base(const ap_int_base& op) = default;
    template <int _AP_W2, bool _AP_S2> INLINE ap_int_base(const ap_int_base<_AP_W2, _AP_S2>& op)
        : V(cdap::convert<_AP_W, 0, _AP_S, AP_TRN, AP_WRAP, 0, _AP_W2, 0>(op.V)) {}
    template <int _AP_W2, int _AP_I2, bool _AP_S2, ap_q_mode _AP_Q2, ap_o_mode _AP_O2, int _AP_N2>
    INLINE ap_int_base(const ap_fixed_base<_AP_W2, _AP_I2, _AP_S2, _AP_Q2, _AP_O2, _AP_N2>& op)
        : V(ap_int_base(op.to_ap_int_base()).V) {}
    template <typename T, cdap::enable_c_int<T> = 0> INLINE ap_int_base(T op)
        : V(cdap::convert<_AP_W, 0, _AP_S, AP_TRN, AP_WRAP, 0, cdap::int_info<T>::width, 0>(cdap::widen(op))) {}
    INLINE ap_int_base(double op) : V(cdap::from_double<_AP_W, 0, _AP_S, AP_TRN_ZERO, AP_WRAP, 0>(op)) {}
    INLINE ap_int_base(float op) : ap_int_base(static_cast<double>(op)) {}
    INLINE ap_int_base(const char* s) : ap_int_base(cdap::parse(s)) {}
    INLINE ap_int_base(const char* s, signed char radix) : ap_int_base(cdap::parse(s, radix)) {}
    template <typename O2> INLINE ap_int_base(const ap_range_ref<O2>& ref)
        : V(canonical(static_cast<cdap::i128>(ref.bits()))) {}
    template <typename O2> INLINE ap_int_base(const ap_bit_ref<O2>& ref) : V(canonical(ref.get() ? 1 : 0)) {}

    INLINE ap_int_base& operator=(const ap_int_base& op) = default;

    // Conversions.
    INLINE operator RetType() const { return static_cast<RetType>(V); }
    INLINE bool to_bool() const { return V != 0; }
    INLINE char to_char() const { return static_cast<char>(V); }
    INLINE signed char to_schar() const { return static_cast<signed char>(V); }
    INLINE unsigned char to_uchar() const { return static_cast<unsigned char>(V); }
    INLINE short to_short() const { return static_cast<short>(V); }
    INLINE unsigned short to_ushort() const { return static_cast<unsigned short>(V); }
    INLINE int to_int() const { return static_cast<int>(V); }
    INLINE unsigned to_uint() const { return static_cast<unsigned>(V); }
    INLINE long to_long() const { return static_cast<long>(V); }
    INLINE unsigned long to_ulong() const { return static_cast<unsigned long>(V); }
    INLINE ap_slong to_int64() const { return static_cast<ap_slong>(V); }
    INLINE ap_ulong to_uint64() const { return static_cast<ap_ulong>(V); }
    INLINE double to_double() const { return static_cast<double>(V); }
    INLINE float to_float() const { return static_cast<float>(V); }
    INLINE int length() const { return _AP_W; }
    INLINE bool iszero() const { return V == 0; }
    INLINE bool is_zero() const { return V == 0; }
    INLINE bool sign() const { return _AP_S && V < 0; }
    INLINE std::string to_string(signed char radix = 10, bool sign = _AP_S) const {
        (void)radix;
        (void)sign;
        return cdap::to_decimal(static_cast<cdap::i128>(V));
    }

    // Bits.
    INLINE ap_range_ref<ap_int_base> range(int hi, int lo) { return ap_range_ref<ap_int_base>(this, hi, lo); }
    INLINE ap_range_ref<ap_int_base> range(int hi, int lo) const {
        return ap_range_ref<ap_int_base>(const_cast<ap_int_base*>(this), hi, lo);
    }
    INLINE ap_range_ref<ap_int_base> range() { return range(_AP_W - 1, 0); }
    INLINE ap_range_ref<ap_int_base> range() const { return range(_AP_W - 1, 0); }
    INLINE ap_range_ref<ap_int_base> operator()(int hi, int lo) { return range(hi, lo); }
    INLINE ap_range_ref<ap_int_base> operator()(int hi, int lo) const { return range(hi, lo); }
    INLINE ap_bit_ref<ap_int_base> operator[](int index) { return ap_bit_ref<ap_int_base>(this, index); }
    INLINE bool operator[](int index) const { return ap_bit_ref<ap_int_base>(const_cast<ap_int_base*>(this), index).get(); }
    INLINE ap_bit_ref<ap_int_base> bit(int index) { return (*this)[index]; }
    INLINE bool bit(int index) const { return (*this)[index]; }
    INLINE bool get_bit(int index) const { return (*this)[index]; }
    INLINE void set_bit(int index, bool value) { (*this)[index] = value; }
    INLINE bool and_reduce() const { return V == canonical(-1); }
    INLINE bool or_reduce() const { return V != 0; }
    INLINE bool xor_reduce() const {
        cdap::u128 all = static_cast<cdap::u128>(static_cast<cdap::i128>(V));
        bool parity = false;
        for (int i = 0; i < _AP_W; ++i) parity ^= (all >> i) & 1;
        return parity;
    }
    INLINE int countLeadingZeros() const {
        cdap::u128 all = static_cast<cdap::u128>(static_cast<cdap::i128>(V));
        for (int i = _AP_W - 1; i >= 0; --i)
            if ((all >> i) & 1) return _AP_W - 1 - i;
        return _AP_W;
    }

    // Arithmetic with other integers (exact, AMD result widths).
#define CDAP_INT_BIN(OP, KIND, EXPR)                                                                   \
    template <int _AP_W2, bool _AP_S2>                                                                 \
    INLINE typename RType<_AP_W2, _AP_S2>::KIND operator OP(const ap_int_base<_AP_W2, _AP_S2>& op2) const { \
        typedef typename RType<_AP_W2, _AP_S2>::KIND R;                                                \
        typedef typename cdap::work<AP_MAX(R::width, AP_MAX(_AP_W, _AP_W2)) + 2>::type T;               \
        T a = static_cast<T>(V), b = static_cast<T>(op2.V);                                             \
        R r;                                                                                           \
        r.V = R::canonical(EXPR);                                                                      \
        return r;                                                                                      \
    }
    CDAP_INT_BIN(+, plus, a + b)
    CDAP_INT_BIN(-, minus, a - b)
    CDAP_INT_BIN(*, mult, a * b)
    CDAP_INT_BIN(/, div, (b == 0 ? T(0) : a / b))
    // AMD's unsigned remainder reads a negative divisor as a huge unsigned value.
    CDAP_INT_BIN(%, mod, (b == 0 ? T(0) : ((!_AP_S && _AP_S2 && b < 0) ? a : a % b)))
    CDAP_INT_BIN(&, logic, a & b)
    CDAP_INT_BIN(|, logic, a | b)
    CDAP_INT_BIN(^, logic, a ^ b)
#undef CDAP_INT_BIN

#define CDAP_INT_ASSIGN(OP)                                                                   \
    template <int _AP_W2, bool _AP_S2> INLINE ap_int_base& operator OP##=(const ap_int_base<_AP_W2, _AP_S2>& op2) { \
        *this = ap_int_base(*this OP op2);                                                    \
        return *this;                                                                         \
    }                                                                                         \
    template <typename T, cdap::enable_c_int<T> = 0> INLINE ap_int_base& operator OP##=(T op2) { \
        return *this OP## = ap_int_base<cdap::int_info<T>::width, cdap::int_info<T>::sign>(op2); \
    }
    CDAP_INT_ASSIGN(+)
    CDAP_INT_ASSIGN(-)
    CDAP_INT_ASSIGN(*)
    CDAP_INT_ASSIGN(/)
    CDAP_INT_ASSIGN(%)
    CDAP_INT_ASSIGN(&)
    CDAP_INT_ASSIGN(|)
    CDAP_INT_ASSIGN(^)
#undef CDAP_INT_ASSIGN

    INLINE typename RType<1, false>::minus operator-() const { return ap_int_base<1, false>(0) - *this; }
    INLINE ap_int_base operator+() const { return *this; }
    INLINE ap_int_base operator~() const { return from_raw(~static_cast<cdap::i128>(V)); }
    INLINE bool operator!() const { return V == 0; }
    INLINE ap_int_base& operator++() { return *this = from_raw(static_cast<cdap::i128>(V) + 1); }
    INLINE ap_int_base& operator--() { return *this = from_raw(static_cast<cdap::i128>(V) - 1); }
    INLINE ap_int_base operator++(int) { ap_int_base t = *this; ++*this; return t; }
    INLINE ap_int_base operator--(int) { ap_int_base t = *this; --*this; return t; }

    // Shifts keep the width and wrap.
    inline ap_int_base shl(int sh) const {
        if (sh < 0) return shr(-sh);
        if (sh >= _AP_W) return ap_int_base();
        return from_raw(static_cast<cdap::i128>(V) << sh);
    }
    inline ap_int_base shr(int sh) const {
        if (sh < 0) return shl(-sh);
        if (sh >= _AP_W) return from_raw(V < 0 ? -1 : 0);
        return from_raw(static_cast<cdap::i128>(V) >> sh);
    }
    template <typename T, cdap::enable_c_int<T> = 0> INLINE ap_int_base operator<<(T sh) const { return shl(static_cast<int>(sh)); }
    template <typename T, cdap::enable_c_int<T> = 0> INLINE ap_int_base operator>>(T sh) const { return shr(static_cast<int>(sh)); }
    template <int _AP_W2, bool _AP_S2> INLINE ap_int_base operator<<(const ap_int_base<_AP_W2, _AP_S2>& sh) const { return shl(static_cast<int>(sh.V)); }
    template <int _AP_W2, bool _AP_S2> INLINE ap_int_base operator>>(const ap_int_base<_AP_W2, _AP_S2>& sh) const { return shr(static_cast<int>(sh.V)); }
    template <typename T> INLINE ap_int_base& operator<<=(const T& sh) { return *this = *this << sh; }
    template <typename T> INLINE ap_int_base& operator>>=(const T& sh) { return *this = *this >> sh; }

    // Comparisons.
#define CDAP_INT_REL(OP)                                                                      \
    template <int _AP_W2, bool _AP_S2> INLINE bool operator OP(const ap_int_base<_AP_W2, _AP_S2>& op2) const { \
        static_assert(AP_MAX(_AP_W, _AP_W2) <= 64 || _AP_S == _AP_S2,                          \
                      "codesign fast ap types: mixed-sign comparison wider than 64 bits");    \
        return static_cast<cdap::i128>(V) OP static_cast<cdap::i128>(op2.V);                  \
    }                                                                                         \
    INLINE bool operator OP(double op2) const { return to_double() OP op2; }
    CDAP_INT_REL(==)
    CDAP_INT_REL(!=)
    CDAP_INT_REL(<)
    CDAP_INT_REL(<=)
    CDAP_INT_REL(>)
    CDAP_INT_REL(>=)
#undef CDAP_INT_REL
};

#define CDAP_INT_WITH_C(OP)                                                                                 \
    template <int _AP_W, bool _AP_S, typename T, cdap::enable_c_int<T> = 0>                                 \
    INLINE auto operator OP(const ap_int_base<_AP_W, _AP_S>& a, T b) {                                      \
        return a OP ap_int_base<cdap::int_info<T>::width, cdap::int_info<T>::sign>(b);                      \
    }                                                                                                       \
    template <int _AP_W, bool _AP_S, typename T, cdap::enable_c_int<T> = 0>                                 \
    INLINE auto operator OP(T a, const ap_int_base<_AP_W, _AP_S>& b) {                                      \
        return ap_int_base<cdap::int_info<T>::width, cdap::int_info<T>::sign>(a) OP b;                      \
    }
CDAP_INT_WITH_C(+)
CDAP_INT_WITH_C(-)
CDAP_INT_WITH_C(*)
CDAP_INT_WITH_C(/)
CDAP_INT_WITH_C(%)
CDAP_INT_WITH_C(&)
CDAP_INT_WITH_C(|)
CDAP_INT_WITH_C(^)
CDAP_INT_WITH_C(==)
CDAP_INT_WITH_C(!=)
CDAP_INT_WITH_C(<)
CDAP_INT_WITH_C(<=)
CDAP_INT_WITH_C(>)
CDAP_INT_WITH_C(>=)
#undef CDAP_INT_WITH_C

template <int _AP_W, bool _AP_S>
inline std::ostream& operator<<(std::ostream& os, const ap_int_base<_AP_W, _AP_S>& x) {
    return os << x.to_string();
}
template <int _AP_W, bool _AP_S> inline std::istream& operator>>(std::istream& is, ap_int_base<_AP_W, _AP_S>& x) {
    std::string text;
    is >> text;
    x = ap_int_base<_AP_W, _AP_S>(text.c_str());
    return is;
}

template <int _AP_W> struct ap_int : ap_int_base<_AP_W, true> {
    typedef ap_int_base<_AP_W, true> Base;
    using Base::Base;
    INLINE ap_int() : Base() {}
    INLINE ap_int(const Base& op) : Base(op) {}
    INLINE ap_int(const ap_int& op) = default;
    INLINE ap_int& operator=(const ap_int& op) = default;
};

template <int _AP_W> struct ap_uint : ap_int_base<_AP_W, false> {
    typedef ap_int_base<_AP_W, false> Base;
    using Base::Base;
    INLINE ap_uint() : Base() {}
    INLINE ap_uint(const Base& op) : Base(op) {}
    INLINE ap_uint(const ap_uint& op) = default;
    INLINE ap_uint& operator=(const ap_uint& op) = default;
};

// ---------------------------------------------------------------------------
// Fixed point.

template <int _AP_W, int _AP_I, bool _AP_S, ap_q_mode _AP_Q, ap_o_mode _AP_O, int _AP_N> struct ap_fixed_base {
    typedef typename cdap::storage<_AP_W, _AP_S>::type raw_type;
    static const int width = _AP_W;
    static const int iwidth = _AP_I;
    static const ap_q_mode qmode = _AP_Q;
    static const ap_o_mode omode = _AP_O;
    static const int frac = _AP_W - _AP_I;
    raw_type V;

    template <int _AP_W2, int _AP_I2, bool _AP_S2> struct RType {
        enum {
            _AP_F = _AP_W - _AP_I,
            F2 = _AP_W2 - _AP_I2,
            mult_w = _AP_W + _AP_W2,
            mult_i = _AP_I + _AP_I2,
            mult_s = _AP_S || _AP_S2,
            plus_w = AP_MAX(_AP_I + (_AP_S2 && !_AP_S), _AP_I2 + (_AP_S && !_AP_S2)) + 1 + AP_MAX(_AP_F, F2),
            plus_i = AP_MAX(_AP_I + (_AP_S2 && !_AP_S), _AP_I2 + (_AP_S && !_AP_S2)) + 1,
            plus_s = _AP_S || _AP_S2,
            minus_w = AP_MAX(_AP_I + (_AP_S2 && !_AP_S), _AP_I2 + (_AP_S && !_AP_S2)) + 1 + AP_MAX(_AP_F, F2),
            minus_i = AP_MAX(_AP_I + (_AP_S2 && !_AP_S), _AP_I2 + (_AP_S && !_AP_S2)) + 1,
            minus_s = true,
            div_w = _AP_S2 + _AP_W + AP_MAX(F2, 0),
            div_i = _AP_S2 + _AP_I + F2,
            div_s = _AP_S || _AP_S2,
            logic_w = AP_MAX(_AP_I + (_AP_S2 && !_AP_S), _AP_I2 + (_AP_S && !_AP_S2)) + AP_MAX(_AP_F, F2),
            logic_i = AP_MAX(_AP_I + (_AP_S2 && !_AP_S), _AP_I2 + (_AP_S && !_AP_S2)),
            logic_s = _AP_S || _AP_S2
        };
        template <int W, int I, bool S>
        using factory = typename std::conditional<S, ap_fixed<W, I>, ap_ufixed<W, I>>::type;
        typedef ap_fixed_base<mult_w, mult_i, mult_s> mult_base;
        typedef ap_fixed_base<plus_w, plus_i, plus_s> plus_base;
        typedef ap_fixed_base<minus_w, minus_i, minus_s> minus_base;
        typedef ap_fixed_base<logic_w, logic_i, logic_s> logic_base;
        typedef ap_fixed_base<div_w, div_i, div_s> div_base;
        typedef ap_fixed_base<_AP_W, _AP_I, _AP_S> arg1_base;
        typedef factory<mult_w, mult_i, mult_s> mult;
        typedef factory<plus_w, plus_i, plus_s> plus;
        typedef factory<minus_w, minus_i, minus_s> minus;
        typedef factory<logic_w, logic_i, logic_s> logic;
        typedef factory<div_w, div_i, div_s> div;
        typedef factory<_AP_W, _AP_I, _AP_S> arg1;
    };

    template <typename T> static INLINE raw_type canonical(T value) {
        return static_cast<raw_type>(cdap::wrap<_AP_W, _AP_S>(static_cast<cdap::i128>(value)));
    }

    INLINE ap_fixed_base() : V(0) {}
    INLINE ap_fixed_base(const ap_fixed_base& op) = default;
    template <int _AP_W2, int _AP_I2, bool _AP_S2, ap_q_mode _AP_Q2, ap_o_mode _AP_O2, int _AP_N2>
    INLINE ap_fixed_base(const ap_fixed_base<_AP_W2, _AP_I2, _AP_S2, _AP_Q2, _AP_O2, _AP_N2>& op)
        : V(cdap::convert<_AP_W, _AP_W - _AP_I, _AP_S, _AP_Q, _AP_O, _AP_N, _AP_W2, _AP_W2 - _AP_I2>(op.V)) {}
    template <int _AP_W2, bool _AP_S2>
    INLINE ap_fixed_base(const ap_int_base<_AP_W2, _AP_S2>& op)
        : V(cdap::convert<_AP_W, _AP_W - _AP_I, _AP_S, _AP_Q, _AP_O, _AP_N, _AP_W2, 0>(op.V)) {}
    template <typename T, cdap::enable_c_int<T> = 0>
    INLINE ap_fixed_base(T op)
        : V(cdap::convert<_AP_W, _AP_W - _AP_I, _AP_S, _AP_Q, _AP_O, _AP_N, cdap::int_info<T>::width, 0>(cdap::widen(op))) {}
    INLINE ap_fixed_base(double d) : V(cdap::from_double<_AP_W, _AP_W - _AP_I, _AP_S, _AP_Q, _AP_O, _AP_N>(d)) {}
    INLINE ap_fixed_base(float d) : ap_fixed_base(static_cast<double>(d)) {}
    INLINE ap_fixed_base(const char* s) : ap_fixed_base(cdap::parse(s)) {}
    INLINE ap_fixed_base(const char* s, signed char radix) : ap_fixed_base(cdap::parse(s, radix)) {}
    template <typename O2> INLINE ap_fixed_base(const ap_range_ref<O2>& ref)
        : ap_fixed_base(ap_int_base<128, false>(ref)) {}
    template <typename O2> INLINE ap_fixed_base(const ap_bit_ref<O2>& ref) : ap_fixed_base(ap_int_base<1, false>(ref.get())) {}

    INLINE ap_fixed_base& operator=(const ap_fixed_base& op) = default;

    // Set the raw bits, as AMD's setBits.
    INLINE void setBits(ap_ulong bits) { V = canonical(bits); }
    static INLINE ap_fixed_base bitsToFixed(ap_ulong bits) {
        ap_fixed_base r;
        r.setBits(bits);
        return r;
    }

    // Integer part rounded toward zero, as AMD's to_ap_int_base().
    INLINE ap_int_base<AP_MAX(_AP_I, 1), _AP_S> to_ap_int_base(bool Cnative = true) const {
        typedef ap_int_base<AP_MAX(_AP_I, 1), _AP_S> R;
        constexpr int f = _AP_W - _AP_I;
        R ret;
        if constexpr (_AP_I <= 0) {
            ret.V = 0;
        } else if constexpr (f > 0) {
            ret = R::from_raw(static_cast<cdap::i128>(V) >> f);
        } else {
            ret = R::from_raw(static_cast<cdap::i128>(V) << (-f));
        }
        if constexpr (f > 0) {
            if (Cnative && _AP_S && V < 0) {
                constexpr int low = f >= _AP_W ? _AP_W : f;
                cdap::u128 mask = (static_cast<cdap::u128>(1) << low) - 1;
                if ((static_cast<cdap::u128>(static_cast<cdap::i128>(V)) & mask) != 0) ++ret;
            }
        }
        return ret;
    }
    INLINE char to_char() const { return to_ap_int_base().to_char(); }
    INLINE int to_int() const { return to_ap_int_base().to_int(); }
    INLINE unsigned to_uint() const { return to_ap_int_base().to_uint(); }
    INLINE ap_slong to_int64() const { return to_ap_int_base().to_int64(); }
    INLINE ap_ulong to_uint64() const { return to_ap_int_base().to_uint64(); }
    INLINE long to_long() const { return to_ap_int_base().to_long(); }
    INLINE double to_double() const { return cdap::to_double(V, _AP_W - _AP_I); }
    INLINE float to_float() const { return static_cast<float>(to_double()); }
    INLINE int length() const { return _AP_W; }
    INLINE bool is_neg() const { return _AP_S && V < 0; }
    INLINE std::string to_string(signed char radix = 10, bool sign = _AP_S) const {
        (void)radix;
        (void)sign;
        std::ostringstream text;
        text.precision(17);
        text << to_double();
        return text.str();
    }

    INLINE operator long double() const { return static_cast<long double>(to_double()); }
    INLINE operator double() const { return to_double(); }
    INLINE operator float() const { return to_float(); }
    INLINE operator bool() const { return V != 0; }
    INLINE operator char() const { return static_cast<char>(to_int()); }
    INLINE operator signed char() const { return static_cast<signed char>(to_int()); }
    INLINE operator unsigned char() const { return static_cast<unsigned char>(to_uint()); }
    INLINE operator short() const { return static_cast<short>(to_int()); }
    INLINE operator unsigned short() const { return static_cast<unsigned short>(to_uint()); }
    INLINE operator int() const { return to_int(); }
    INLINE operator unsigned int() const { return to_uint(); }
    INLINE operator long() const { return static_cast<long>(to_int64()); }
    INLINE operator unsigned long() const { return static_cast<unsigned long>(to_uint64()); }
    INLINE operator ap_ulong() const { return to_uint64(); }
    INLINE operator ap_slong() const { return to_int64(); }

    // Bits.
    INLINE ap_range_ref<ap_fixed_base> range(int hi, int lo) { return ap_range_ref<ap_fixed_base>(this, hi, lo); }
    INLINE ap_range_ref<ap_fixed_base> range(int hi, int lo) const {
        return ap_range_ref<ap_fixed_base>(const_cast<ap_fixed_base*>(this), hi, lo);
    }
    INLINE ap_range_ref<ap_fixed_base> range() { return range(_AP_W - 1, 0); }
    INLINE ap_range_ref<ap_fixed_base> range() const { return range(_AP_W - 1, 0); }
    INLINE ap_range_ref<ap_fixed_base> operator()(int hi, int lo) { return range(hi, lo); }
    INLINE ap_range_ref<ap_fixed_base> operator()(int hi, int lo) const { return range(hi, lo); }
    INLINE ap_bit_ref<ap_fixed_base> operator[](int index) { return ap_bit_ref<ap_fixed_base>(this, index); }
    INLINE bool operator[](int index) const {
        return ap_bit_ref<ap_fixed_base>(const_cast<ap_fixed_base*>(this), index).get();
    }
    INLINE ap_bit_ref<ap_fixed_base> bit(int index) { return (*this)[index]; }
    INLINE bool bit(int index) const { return (*this)[index]; }
    INLINE bool get_bit(int index) const { return (*this)[index]; }
    INLINE void set_bit(int index, bool value) { (*this)[index] = value; }

    // Exact arithmetic with other fixed-point values.
    template <int _AP_W2, int _AP_I2, bool _AP_S2, ap_q_mode _AP_Q2, ap_o_mode _AP_O2, int _AP_N2>
    INLINE typename RType<_AP_W2, _AP_I2, _AP_S2>::mult operator*(
        const ap_fixed_base<_AP_W2, _AP_I2, _AP_S2, _AP_Q2, _AP_O2, _AP_N2>& op2) const {
        typedef typename RType<_AP_W2, _AP_I2, _AP_S2>::mult R;
        typedef typename cdap::work<R::width + 2>::type T;
        R r;
        r.V = static_cast<typename R::raw_type>(static_cast<T>(V) * static_cast<T>(op2.V));
        return r;
    }

#define CDAP_FIX_ALIGNED(OP, KIND, EXPR)                                                                 \
    template <int _AP_W2, int _AP_I2, bool _AP_S2, ap_q_mode _AP_Q2, ap_o_mode _AP_O2, int _AP_N2>         \
    INLINE typename RType<_AP_W2, _AP_I2, _AP_S2>::KIND operator OP(                                      \
        const ap_fixed_base<_AP_W2, _AP_I2, _AP_S2, _AP_Q2, _AP_O2, _AP_N2>& op2) const {                 \
        typedef typename RType<_AP_W2, _AP_I2, _AP_S2>::KIND R;                                          \
        constexpr int f1 = _AP_W - _AP_I, f2 = _AP_W2 - _AP_I2, f = AP_MAX(f1, f2);                      \
        typedef typename cdap::work<R::width + 2>::type T;                                               \
        T a = static_cast<T>(V) << (f - f1);                                                             \
        T b = static_cast<T>(op2.V) << (f - f2);                                                         \
        R r;                                                                                             \
        r.V = R::canonical(EXPR);                                                                        \
        return r;                                                                                        \
    }
    CDAP_FIX_ALIGNED(+, plus, a + b)
    CDAP_FIX_ALIGNED(-, minus, a - b)
    CDAP_FIX_ALIGNED(&, logic, a & b)
    CDAP_FIX_ALIGNED(|, logic, a | b)
    CDAP_FIX_ALIGNED(^, logic, a ^ b)
#undef CDAP_FIX_ALIGNED

    template <int _AP_W2, int _AP_I2, bool _AP_S2, ap_q_mode _AP_Q2, ap_o_mode _AP_O2, int _AP_N2>
    INLINE typename RType<_AP_W2, _AP_I2, _AP_S2>::div operator/(
        const ap_fixed_base<_AP_W2, _AP_I2, _AP_S2, _AP_Q2, _AP_O2, _AP_N2>& op2) const {
        typedef typename RType<_AP_W2, _AP_I2, _AP_S2>::div R;
        constexpr int f2 = _AP_W2 - _AP_I2;
        constexpr int shift = AP_MAX(f2, 0);
        typedef typename cdap::work<AP_MAX(_AP_W + shift, _AP_W2) + 3>::type T;
        R r;
        if (op2.V == 0) return r;
        // AMD divides in W1 bits, so -min / -1 wraps there.
        constexpr int w1 = AP_MAX(_AP_W + shift + ((_AP_S2 && !_AP_S) ? 1 : 0), _AP_W2 + ((_AP_S && !_AP_S2) ? 1 : 0));
        T dividend = static_cast<T>(V) << shift;
        r.V = R::canonical(cdap::wrap<w1, (_AP_S || _AP_S2)>(dividend / static_cast<T>(op2.V)));
        return r;
    }

#define CDAP_FIX_ASSIGN(OP)                                                                              \
    template <int _AP_W2, int _AP_I2, bool _AP_S2, ap_q_mode _AP_Q2, ap_o_mode _AP_O2, int _AP_N2>         \
    INLINE ap_fixed_base& operator OP##=(const ap_fixed_base<_AP_W2, _AP_I2, _AP_S2, _AP_Q2, _AP_O2, _AP_N2>& op2) { \
        *this = ap_fixed_base(*this OP op2);                                                             \
        return *this;                                                                                    \
    }                                                                                                    \
    template <int _AP_W2, bool _AP_S2> INLINE ap_fixed_base& operator OP##=(const ap_int_base<_AP_W2, _AP_S2>& op2) { \
        return *this OP## = ap_fixed_base<_AP_W2, _AP_W2, _AP_S2>(op2);                                  \
    }                                                                                                    \
    template <typename T, cdap::enable_c_int<T> = 0> INLINE ap_fixed_base& operator OP##=(T op2) {       \
        return *this OP## = ap_fixed_base<cdap::int_info<T>::width, cdap::int_info<T>::width, cdap::int_info<T>::sign>(op2); \
    }
    CDAP_FIX_ASSIGN(+)
    CDAP_FIX_ASSIGN(-)
    CDAP_FIX_ASSIGN(*)
    CDAP_FIX_ASSIGN(/)
    CDAP_FIX_ASSIGN(&)
    CDAP_FIX_ASSIGN(|)
    CDAP_FIX_ASSIGN(^)
#undef CDAP_FIX_ASSIGN

    INLINE typename RType<_AP_W, _AP_I, _AP_S>::minus operator-() const {
        ap_fixed_base<_AP_W + 1, _AP_I + 1, true> r(*this);
        r.V = -r.V;
        return r;
    }
    INLINE ap_fixed_base operator+() const { return *this; }
    INLINE ap_fixed_base operator~() const {
        ap_fixed_base r;
        r.V = canonical(~static_cast<cdap::i128>(V));
        return r;
    }
    INLINE bool operator!() const { return V == 0; }
    INLINE ap_fixed_base& operator++() {
        *this += ap_fixed_base<_AP_W - _AP_I + 1, 1, false>(1);
        return *this;
    }
    INLINE ap_fixed_base& operator--() {
        *this -= ap_fixed_base<_AP_W - _AP_I + 1, 1, false>(1);
        return *this;
    }
    INLINE ap_fixed_base operator++(int) { ap_fixed_base t = *this; ++*this; return t; }
    INLINE ap_fixed_base operator--(int) { ap_fixed_base t = *this; --*this; return t; }

    // Shifts act on the raw bits, keep the type and wrap (AMD without __SC_COMPATIBLE__).
    inline ap_fixed_base shl(int sh) const {
        if (sh < 0) return shr(-sh);
        ap_fixed_base r;
        r.V = sh >= _AP_W ? 0 : canonical(static_cast<cdap::i128>(V) << sh);
        return r;
    }
    inline ap_fixed_base shr(int sh) const {
        if (sh < 0) return shl(-sh);
        ap_fixed_base r;
        if (sh < _AP_W) {
            r.V = canonical(static_cast<cdap::i128>(V) >> sh);
        } else if (V < 0) {
            r.V = canonical(-1);
        }
        return r;
    }
    template <typename T, cdap::enable_c_int<T> = 0> INLINE ap_fixed_base operator<<(T sh) const { return shl(static_cast<int>(sh)); }
    template <typename T, cdap::enable_c_int<T> = 0> INLINE ap_fixed_base operator>>(T sh) const { return shr(static_cast<int>(sh)); }
    template <int _AP_W2, bool _AP_S2> INLINE ap_fixed_base operator<<(const ap_int_base<_AP_W2, _AP_S2>& sh) const { return shl(static_cast<int>(sh.V)); }
    template <int _AP_W2, bool _AP_S2> INLINE ap_fixed_base operator>>(const ap_int_base<_AP_W2, _AP_S2>& sh) const { return shr(static_cast<int>(sh.V)); }
    template <typename T> INLINE ap_fixed_base& operator<<=(const T& sh) { return *this = *this << sh; }
    template <typename T> INLINE ap_fixed_base& operator>>=(const T& sh) { return *this = *this >> sh; }

    // Comparisons: exact between fixed-point values, through double with floats.
#define CDAP_FIX_REL(OP)                                                                                 \
    template <int _AP_W2, int _AP_I2, bool _AP_S2, ap_q_mode _AP_Q2, ap_o_mode _AP_O2, int _AP_N2>         \
    INLINE bool operator OP(const ap_fixed_base<_AP_W2, _AP_I2, _AP_S2, _AP_Q2, _AP_O2, _AP_N2>& op2) const { \
        constexpr int f1 = _AP_W - _AP_I, f2 = _AP_W2 - _AP_I2, f = AP_MAX(f1, f2);                      \
        constexpr int need = AP_MAX(_AP_W + (f - f1), _AP_W2 + (f - f2)) + 2;                            \
        static_assert(need - 2 <= 64 || _AP_S == _AP_S2,                                                 \
                      "codesign fast ap types: AMD compares mixed-sign values wider than 64 bits "       \
                      "differently; not modelled");                                                      \
        typedef typename cdap::work<need>::type T;                                                       \
        return (static_cast<T>(V) << (f - f1)) OP (static_cast<T>(op2.V) << (f - f2));                   \
    }                                                                                                    \
    INLINE bool operator OP(double d) const { return to_double() OP d; }
    CDAP_FIX_REL(==)
    CDAP_FIX_REL(!=)
    CDAP_FIX_REL(<)
    CDAP_FIX_REL(<=)
    CDAP_FIX_REL(>)
    CDAP_FIX_REL(>=)
#undef CDAP_FIX_REL
};

// Fixed point with C integers and ap_int: the integer becomes ap_fixed_base<w, w>.
#define CDAP_FIX_WITH_INT(OP)                                                                                    \
    template <int _AP_W, int _AP_I, bool _AP_S, ap_q_mode _AP_Q, ap_o_mode _AP_O, int _AP_N, typename T,          \
              cdap::enable_c_int<T> = 0>                                                                          \
    INLINE auto operator OP(const ap_fixed_base<_AP_W, _AP_I, _AP_S, _AP_Q, _AP_O, _AP_N>& a, T b) {              \
        return a OP ap_fixed_base<cdap::int_info<T>::width, cdap::int_info<T>::width, cdap::int_info<T>::sign>(b); \
    }                                                                                                             \
    template <int _AP_W, int _AP_I, bool _AP_S, ap_q_mode _AP_Q, ap_o_mode _AP_O, int _AP_N, typename T,          \
              cdap::enable_c_int<T> = 0>                                                                          \
    INLINE auto operator OP(T a, const ap_fixed_base<_AP_W, _AP_I, _AP_S, _AP_Q, _AP_O, _AP_N>& b) {              \
        return ap_fixed_base<cdap::int_info<T>::width, cdap::int_info<T>::width, cdap::int_info<T>::sign>(a) OP b; \
    }                                                                                                             \
    template <int _AP_W, int _AP_I, bool _AP_S, ap_q_mode _AP_Q, ap_o_mode _AP_O, int _AP_N, int _AP_W2,          \
              bool _AP_S2>                                                                                        \
    INLINE auto operator OP(const ap_fixed_base<_AP_W, _AP_I, _AP_S, _AP_Q, _AP_O, _AP_N>& a,                     \
                            const ap_int_base<_AP_W2, _AP_S2>& b) {                                               \
        return a OP ap_fixed_base<_AP_W2, _AP_W2, _AP_S2>(b);                                                     \
    }                                                                                                             \
    template <int _AP_W, int _AP_I, bool _AP_S, ap_q_mode _AP_Q, ap_o_mode _AP_O, int _AP_N, int _AP_W2,          \
              bool _AP_S2>                                                                                        \
    INLINE auto operator OP(const ap_int_base<_AP_W2, _AP_S2>& a,                                                 \
                            const ap_fixed_base<_AP_W, _AP_I, _AP_S, _AP_Q, _AP_O, _AP_N>& b) {                   \
        return ap_fixed_base<_AP_W2, _AP_W2, _AP_S2>(a) OP b;                                                     \
    }
CDAP_FIX_WITH_INT(+)
CDAP_FIX_WITH_INT(-)
CDAP_FIX_WITH_INT(*)
CDAP_FIX_WITH_INT(/)
CDAP_FIX_WITH_INT(&)
CDAP_FIX_WITH_INT(|)
CDAP_FIX_WITH_INT(^)
CDAP_FIX_WITH_INT(==)
CDAP_FIX_WITH_INT(!=)
CDAP_FIX_WITH_INT(<)
CDAP_FIX_WITH_INT(<=)
CDAP_FIX_WITH_INT(>)
CDAP_FIX_WITH_INT(>=)
#undef CDAP_FIX_WITH_INT

#define CDAP_REL_DOUBLE(OP)                                                                                  \
    template <int _AP_W, int _AP_I, bool _AP_S, ap_q_mode _AP_Q, ap_o_mode _AP_O, int _AP_N>                  \
    INLINE bool operator OP(double a, const ap_fixed_base<_AP_W, _AP_I, _AP_S, _AP_Q, _AP_O, _AP_N>& b) {     \
        return a OP b.to_double();                                                                            \
    }
CDAP_REL_DOUBLE(==)
CDAP_REL_DOUBLE(!=)
CDAP_REL_DOUBLE(<)
CDAP_REL_DOUBLE(<=)
CDAP_REL_DOUBLE(>)
CDAP_REL_DOUBLE(>=)
#undef CDAP_REL_DOUBLE

template <int _AP_W, int _AP_I, bool _AP_S, ap_q_mode _AP_Q, ap_o_mode _AP_O, int _AP_N>
inline std::ostream& operator<<(std::ostream& os, const ap_fixed_base<_AP_W, _AP_I, _AP_S, _AP_Q, _AP_O, _AP_N>& x) {
    return os << x.to_double();
}
template <int _AP_W, int _AP_I, bool _AP_S, ap_q_mode _AP_Q, ap_o_mode _AP_O, int _AP_N>
inline std::istream& operator>>(std::istream& is, ap_fixed_base<_AP_W, _AP_I, _AP_S, _AP_Q, _AP_O, _AP_N>& x) {
    std::string text;
    is >> text;
    x = ap_fixed_base<_AP_W, _AP_I, _AP_S, _AP_Q, _AP_O, _AP_N>(text.c_str());
    return is;
}

template <int _AP_W, int _AP_I, ap_q_mode _AP_Q, ap_o_mode _AP_O, int _AP_N>
struct ap_fixed : ap_fixed_base<_AP_W, _AP_I, true, _AP_Q, _AP_O, _AP_N> {
    typedef ap_fixed_base<_AP_W, _AP_I, true, _AP_Q, _AP_O, _AP_N> Base;
    using Base::Base;
    INLINE ap_fixed() : Base() {}
    INLINE ap_fixed(const Base& op) : Base(op) {}
    INLINE ap_fixed(const ap_fixed& op) = default;
    INLINE ap_fixed& operator=(const ap_fixed& op) = default;
};

template <int _AP_W, int _AP_I, ap_q_mode _AP_Q, ap_o_mode _AP_O, int _AP_N>
struct ap_ufixed : ap_fixed_base<_AP_W, _AP_I, false, _AP_Q, _AP_O, _AP_N> {
    typedef ap_fixed_base<_AP_W, _AP_I, false, _AP_Q, _AP_O, _AP_N> Base;
    using Base::Base;
    INLINE ap_ufixed() : Base() {}
    INLINE ap_ufixed(const Base& op) : Base(op) {}
    INLINE ap_ufixed(const ap_ufixed& op) = default;
    INLINE ap_ufixed& operator=(const ap_ufixed& op) = default;
};

#endif
