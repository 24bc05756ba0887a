// The C++ wrapper compiles on its own: its only include is scdeep.hpp (make cpp-test
// builds this with -std=c++17 -Wall -Wextra -Werror).
#include <scdeep.hpp>

int main() { return scdeep::version().empty(); }
