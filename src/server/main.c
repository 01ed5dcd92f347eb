/* placeholder: replaced by the server work */
int main(void) { return 1; }
