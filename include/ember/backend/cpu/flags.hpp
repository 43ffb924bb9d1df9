#pragma once
// with_flag(flag, f): calls f(std::true_type{}) or f(std::false_type{}), so that a kernel's
// run-time options become template arguments and its inner loop is compiled once per set of
// options, without branches (the optimizer steps in sgd.hpp and adam.hpp).

#include <type_traits>

namespace ember::cpu {

template <class F>
void with_flag(bool flag, F&& f) {
  if (flag)
    f(std::true_type{});
  else
    f(std::false_type{});
}

}  // namespace ember::cpu
