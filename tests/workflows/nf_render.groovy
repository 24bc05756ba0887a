// Test aid for the Nextflow modules (Nextflow itself cannot run on our machines; this is
// not Nextflow). Two modes:
//   groovy nf_render.groovy parse FILE...                    compile each file as Groovy
//   groovy nf_render.groovy render FILE PROCESS SECTION JSON  print a process's script: or
//       stub: block rendered with the bindings in JSON ({"meta": {...}, "task": {...},
//       "<input name>": "<staged file name>"}), as Nextflow would interpolate it
import groovy.json.JsonSlurper

def mode = args[0]
if (mode == 'parse') {
    args.drop(1).each { f ->
        new GroovyShell().parse(new File(f))   // throws (exit 1) on a syntax error
        println "parsed ${f}"
    }
    return
}
assert mode == 'render'
def (file, proc, section, json) = args.drop(1).toList()
def lines = new File(file).readLines()
def start = lines.findIndexOf { it ==~ /^process\s+${proc}\s*\{\s*$/ }
if (start < 0) throw new IllegalArgumentException("no process ${proc} in ${file}")
def from = (start..<lines.size()).find { lines[it] ==~ /^\s*${section}:\s*$/ }
if (from == null) throw new IllegalArgumentException("process ${proc} has no ${section}: block")
// the block ends at the next section label (stub:/script:) or at the process's closing brace
def to = ((from + 1)..<lines.size()).find { lines[it] ==~ /^\s*(stub|script|shell|exec):\s*$/ || lines[it] ==~ /^\}\s*$/ }
def block = lines.subList(from + 1, to).join('\n')
def binding = new Binding(new JsonSlurper().parseText(json))
// Nextflow strips the common indentation of a rendered script
print new GroovyShell(binding).evaluate(block).toString().stripIndent()
