// tokenswift: the command-line entry point (subcommands generate, score, inspect, bench, ...).
#include <cstdio>

int main() {
  std::puts("tokenswift");
  return 0;
}
