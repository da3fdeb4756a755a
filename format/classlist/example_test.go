package classlist_test

import (
	"fmt"
	"strings"

	"resdet/format/classlist"
)

func ExampleRead() {
	names, err := classlist.Read(strings.NewReader("# classes of my data\ncat\n\n  traffic light \n"), "classes.txt")
	fmt.Printf("%q %v\n", names, err)
	_, err = classlist.Read(strings.NewReader("cat\ndog\ncat\n"), "classes.txt")
	fmt.Println(err)
	// Output:
	// ["cat" "traffic light"] <nil>
	// classes.txt: line 3: "cat" is listed twice (also line 1)
}
