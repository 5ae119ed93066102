/* The end of an element type's instantiation (algo/instance.h): its
 * names undefined for the next (no include guard). */
#undef XT_DT
#undef XT_T
#undef XT_IS_F32
#undef XT_TBLOCK
#undef XT_TSPECIAL
#undef XT_TMAX
