// codesign fast ap types: replaces AMD's ap_int.h in C simulation (see codesign_ap_core.h).
#ifndef CODESIGN_FAST_AP_INT_H
#define CODESIGN_FAST_AP_INT_H
#include "codesign_ap_types.h"
#endif
