// codesign fast ap types: replaces AMD's ap_fixed.h in C simulation (see codesign_ap_core.h).
#ifndef CODESIGN_FAST_AP_FIXED_H
#define CODESIGN_FAST_AP_FIXED_H
#include "codesign_ap_types.h"
#endif
