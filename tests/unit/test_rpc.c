#include "unit.h"
static const struct unit_case cases[] = {{NULL, NULL}};
int main(void) { return unit_main("rpc", cases); }
