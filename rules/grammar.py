"""The grammar of the rule language (Lark, LALR(1)); the guide is rules/README.md.

Kept as a Python string so it ships inside the package without package-data rules.
"""

__all__ = ["GRAMMAR"]

GRAMMAR = r"""
// The riskwire rule language (Lark, LALR(1)). See rules/README.md for the guide.
//
//   ruleset ecommerce_default
//
//   rule disposable_email_high_amount:
//       reason: DISPOSABLE_EMAIL
//       description: a throw-away mailbox paying more than 100 in base currency
//       decline if :email_disposable: and :amount_base: > 100
//
// Whitespace and newlines are free; `#` starts a comment; a description runs to the
// end of its line.

start: header? rule*

header: "ruleset" NAME

rule: "rule" NAME [SHADOW] ":" "reason" ":" NAME [DESCRIPTION] ACTION "if" expr

?expr: expr "or" and_expr          -> or_
     | and_expr

?and_expr: and_expr "and" not_expr -> and_
         | not_expr

?not_expr: NOT not_expr            -> not_
         | comparison

?comparison: sum COMP_OP sum       -> compare
           | sum IN container      -> member
           | sum NOT IN container  -> not_member
           | sum STR_OP sum        -> strop
           | sum

container: LIST_NAME               -> listref
         | LSQB literal ("," literal)* "]"   -> setlit

literal: NUMBER                    -> lit_num
       | MINUS NUMBER              -> lit_neg
       | STRING                    -> lit_str

?sum: sum PLUS product             -> arith
    | sum MINUS product            -> arith
    | product

?product: product MUL_OP unary     -> arith
        | unary

?unary: MINUS unary                -> neg
      | atom

?atom: ATTR                        -> attr
     | NUMBER                      -> num
     | STRING                      -> string
     | "true"                      -> true
     | "false"                     -> false
     | "(" expr ")"

SHADOW: "shadow"
ACTION: "allow" | "decline" | "review"
DESCRIPTION: /description[ \t]*:[^\n]*/
NOT: "not"
IN: "in"
LSQB: "["
COMP_OP: "==" | "!=" | "<=" | ">=" | "<" | ">"
STR_OP: "contains" | "starts_with" | "ends_with"
PLUS: "+"
MINUS: "-"
MUL_OP: "*" | "/" | "%"
NAME: /[A-Za-z_][A-Za-z0-9_]*/
ATTR: /:[A-Za-z_][A-Za-z0-9_]*:/
LIST_NAME: /@[A-Za-z_][A-Za-z0-9_]*/
NUMBER: /[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/
STRING: /'(?:[^'\\\n]|\\.)*'/ | /"(?:[^"\\\n]|\\.)*"/
COMMENT: /#[^\n]*/

%import common.WS
%ignore WS
%ignore COMMENT
"""
